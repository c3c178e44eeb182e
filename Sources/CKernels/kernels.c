int pd_ckernels_present(void) { return 1; }
