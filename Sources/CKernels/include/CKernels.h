#ifndef PAREIDOLIA_CKERNELS_H
#define PAREIDOLIA_CKERNELS_H
#include <stddef.h>
#include <stdint.h>
// Placeholder; kernels are added per file in Sources/CKernels.
#endif
