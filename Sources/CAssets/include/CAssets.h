#ifndef PAREIDOLIA_CASSETS_H
#define PAREIDOLIA_CASSETS_H
#include <stddef.h>
// Files from Assets/ embedded in the binary (see assets.c), so the tool needs no data directory.
// The CLIP BPE vocabulary, gzip-compressed, as shipped by OpenAI CLIP.
const unsigned char *pd_asset_clip_vocab_gz(size_t *size);
// The package's Assets/ folder as it was when this binary was built (where the embedded default
// model is found when no installed copy is).
const char *pd_assets_dir(void);
// The page of `pareidolia serve`: Assets/serve/index.html, app.js, app.css.
const unsigned char *pd_asset_serve_index(size_t *size);
const unsigned char *pd_asset_serve_script(size_t *size);
const unsigned char *pd_asset_serve_style(size_t *size);
#endif
