// PNG text chunks through libpng, with its longjmp error reporting kept inside C.
#include "CPNGText.h"
#include <png.h>
#include <setjmp.h>
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

int pd_png_text(const unsigned char *data, size_t size, void *ctx, pd_png_text_fn fn, char *error) {
    error[0] = 0;
    if (size < 8 || png_sig_cmp(data, 0, 8) != 0) { strcpy(error, "not a PNG file"); return -1; }
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
