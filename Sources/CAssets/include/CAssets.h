#ifndef PAREIDOLIA_CASSETS_H
#define PAREIDOLIA_CASSETS_H
#include <stddef.h>
// Files from Assets/ embedded in the binary (see assets.c), so the tool needs no data directory.
// The CLIP BPE vocabulary, gzip-compressed, as shipped by OpenAI CLIP.
const unsigned char *pd_asset_clip_vocab_gz(size_t *size);
#endif
