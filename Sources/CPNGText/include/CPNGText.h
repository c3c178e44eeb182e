#ifndef CPNGTEXT_H
#define CPNGTEXT_H
#include <stddef.h>

/// Called once per text chunk (tEXt, zTXt, iTXt) found before the image data: key, text
/// (NUL-terminated; iTXt is UTF-8, tEXt is whatever the writer put there), its length in bytes.
typedef void (*pd_png_text_fn)(void *ctx, const char *key, const char *text, size_t length);

/// Reads the text chunks of the PNG held in `data` (size bytes) with libpng, its errors caught
/// (libpng reports them by longjmp, which must not cross into Swift). Returns the number of
/// chunks, or -1 with a one-line reason in `error` (256 bytes).
int pd_png_text(const unsigned char *data, size_t size, void *ctx, pd_png_text_fn fn, char *error);

/// Checks what a PNG claims before any decoder trusts it: the signature, an IHDR of at most
/// `max_side` pixels a side and `max_pixels` in all, and chunks that fit in the file — a chunk
/// claiming gigabytes would otherwise be allocated before it is found missing. Chunks are checked
/// up to the image data (what a text reader sees), or to IEND when `whole` (what a decoder sees).
/// Returns 0, or -1 with a one-line reason in `error` (256 bytes).
int pd_png_check(const unsigned char *data, size_t size, unsigned long max_side, unsigned long max_pixels, int whole,
                 char *error);

#endif
