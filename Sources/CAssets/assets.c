#include "CAssets.h"

// .incbin copies the file's bytes into .rodata at assembly time; PD_ASSETS_DIR is the package's
// Assets/ folder (set in Package.swift). The asset is small (1.3 MB) and always needed.
#define PD_STR2(x) #x
#define PD_STR(x) PD_STR2(x)

__asm__(".section .rodata\n"
        ".balign 16\n"
        "pd_clip_vocab_start:\n"
        ".incbin \"" PD_STR(PD_ASSETS_DIR) "/bpe_simple_vocab_16e6.txt.gz\"\n"
        "pd_clip_vocab_end:\n"
        ".previous\n");

extern const unsigned char pd_clip_vocab_start[] __asm__("pd_clip_vocab_start");
extern const unsigned char pd_clip_vocab_end[] __asm__("pd_clip_vocab_end");

const unsigned char *pd_asset_clip_vocab_gz(size_t *size) {
    *size = (size_t)(pd_clip_vocab_end - pd_clip_vocab_start);
    return pd_clip_vocab_start;
}

const char *pd_assets_dir(void) { return PD_STR(PD_ASSETS_DIR); }

// The page of `pareidolia serve` (Assets/serve): plain HTML, CSS and JavaScript, served from the
// binary so the server needs no files beside it. SwiftPM does not see .incbin inputs: after
// editing the page, touch this file so it is assembled again.
#define PD_SERVE_ASSET(name, file)                                                   \
    __asm__(".section .rodata\n"                                                     \
            ".balign 16\n"                                                           \
            "pd_serve_" #name "_start:\n"                                            \
            ".incbin \"" PD_STR(PD_ASSETS_DIR) "/serve/" file "\"\n"                 \
            "pd_serve_" #name "_end:\n"                                              \
            ".byte 0\n"                                                              \
            ".previous\n");                                                          \
    extern const unsigned char pd_serve_##name##_start[] __asm__("pd_serve_" #name "_start"); \
    extern const unsigned char pd_serve_##name##_end[] __asm__("pd_serve_" #name "_end");     \
    const unsigned char *pd_asset_serve_##name(size_t *size) {                       \
        *size = (size_t)(pd_serve_##name##_end - pd_serve_##name##_start);           \
        return pd_serve_##name##_start;                                              \
    }

PD_SERVE_ASSET(index, "index.html")
PD_SERVE_ASSET(script, "app.js")
PD_SERVE_ASSET(style, "app.css")
