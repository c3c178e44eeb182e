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

#endif
