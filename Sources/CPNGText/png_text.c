// PNG text chunks through libpng, with its longjmp error reporting kept inside C.
#include "CPNGText.h"
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>

struct source { const unsigned char *data; size_t size, pos; char *error; };

static void read_bytes(png_structp png, png_bytep out, png_size_t n) {
    struct source *s = png_get_io_ptr(png);
    if (n > s->size - s->pos) png_error(png, "the file ends early");
    memcpy(out, s->data + s->pos, n);
    s->pos += n;
}

static void on_error(png_structp png, png_const_charp message) {
    struct source *s = png_get_error_ptr(png);
    strncpy(s->error, message ? message : "libpng error", 255);
    s->error[255] = 0;
    png_longjmp(png, 1);
}

static void on_warning(png_structp png, png_const_charp message) { (void)png; (void)message; }

static unsigned long be32(const unsigned char *p) {
    return (unsigned long)p[0] << 24 | (unsigned long)p[1] << 16 | (unsigned long)p[2] << 8 | p[3];
}

int pd_png_check(const unsigned char *data, size_t size, unsigned long max_side, unsigned long max_pixels, int whole,
                 char *error) {
    error[0] = 0;
    if (size < 8 || png_sig_cmp(data, 0, 8) != 0) { strcpy(error, "not a PNG file"); return -1; }
    size_t pos = 8;
    int first = 1;
    while (pos + 8 <= size) {
        unsigned long length = be32(data + pos);
        const unsigned char *type = data + pos + 4;
        if (length > size - pos - 8 || size - pos - 8 - length < 4) {
            snprintf(error, 256, "chunk %.4s at byte %zu claims %lu bytes, more than the file holds (truncated?)",
                     (const char *)type, pos, length);
            for (char *c = error; *c; c++) if (*c < 0x20 || *c > 0x7E) *c = '?';
            return -1;
        }
        if (first) {
            if (memcmp(type, "IHDR", 4) != 0 || length < 8) { strcpy(error, "the first chunk is not IHDR"); return -1; }
            unsigned long w = be32(data + pos + 8), h = be32(data + pos + 12);
            if (w == 0 || h == 0 || w > max_side || h > max_side || w * h > max_pixels) {
                snprintf(error, 256, "image is %lu×%lu pixels, outside 1…%lu a side and %lu in all", w, h, max_side, max_pixels);
                return -1;
            }
            first = 0;
        }
        if (memcmp(type, "IEND", 4) == 0 || (!whole && memcmp(type, "IDAT", 4) == 0)) return 0;
        pos += 12 + length;
    }
    strcpy(error, whole ? "the file ends before its IEND chunk (truncated?)" : "the file ends before the image data (truncated?)");
    return -1;
}

int pd_png_text(const unsigned char *data, size_t size, void *ctx, pd_png_text_fn fn, char *error) {
    // libpng's own chunk-size limit does not stop a text chunk's allocation; check first.
    if (pd_png_check(data, size, 1 << 16, (unsigned long)1 << 32, 0, error) != 0) return -1;
    struct source s = { data, size, 0, error };
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &s, on_error, on_warning);
    if (!png) { strcpy(error, "libpng could not start"); return -1; }
    png_infop info = png_create_info_struct(png);
    if (!info) { png_destroy_read_struct(&png, NULL, NULL); strcpy(error, "libpng could not start"); return -1; }
    // volatile: read after the longjmp.
    volatile int count = -1;
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        return -1;
    }
    png_set_read_fn(png, &s, read_bytes);
    // A stranger's file: no giant image header, no giant (decompressed) text chunk.
    png_set_user_limits(png, 1 << 16, 1 << 16);
    png_set_chunk_cache_max(png, 1000);
    png_set_chunk_malloc_max(png, 8 << 20);
    png_read_info(png, info);
    png_textp text = NULL;
    int n = 0;
    png_get_text(png, info, &text, &n);
    for (int i = 0; i < n; i++) {
        size_t length = text[i].compression == PNG_ITXT_COMPRESSION_NONE || text[i].compression == PNG_ITXT_COMPRESSION_zTXt
            ? text[i].itxt_length : text[i].text_length;
        if (text[i].text && length == 0) length = strlen(text[i].text);
        fn(ctx, text[i].key, text[i].text ? text[i].text : "", text[i].text ? length : 0);
    }
    count = n;
    png_destroy_read_struct(&png, &info, NULL);
    return count;
}
