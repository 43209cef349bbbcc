/* PNG reading and writing: the only file that includes <png.h>.
 * Reading uses libpng's classic API (exact 16-bit values, no gamma or alpha
 * compositing, as PIL's convert does); its setjmp lives in png_decode_guarded
 * alone. Writing uses the simplified API into an fv_tmpfile, and the classic
 * one for fast 8-bit gray maps with text chunks (fv_png_write_gray8). */
#include "io/decode.h"

#include <errno.h>
#include <png.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Everything the guarded decoder touches lives here, in the caller's frame,
 * so nothing local to the setjmp function changes between setjmp and longjmp. */
struct png_read_ctx {
    FILE *fp;
    png_structp png;
    png_infop info;
    unsigned char *raw; /* (h, rowbytes) decoded rows as libpng delivers them */
    png_bytep *rows;    /* (h) pointers into raw */
    float *data;        /* (h, w, c) output */
    int h, w, c;
    int truncated;
    char msg[256];
    const char *path;
    size_t file_bytes;
    struct fv_error err; /* set by the size check */
};

static void png_on_error(png_structp png, png_const_charp msg) {
    struct png_read_ctx *ctx = png_get_error_ptr(png);
    snprintf(ctx->msg, sizeof ctx->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg;
}

static void png_on_read(png_structp png, png_bytep buf, size_t len) {
    struct png_read_ctx *ctx = png_get_io_ptr(png);
    if (fread(buf, 1, len, ctx->fp) == len) return;
    if (feof(ctx->fp)) {
        ctx->truncated = 1;
        png_error(png, "file ends early");
    }
    png_error(png, strerror(errno));
}

/* Decodes into ctx->data; returns 0, or -1 after a libpng error (ctx->msg). */
static int png_decode_guarded(struct png_read_ctx *ctx) {
    png_structp png = ctx->png;
    png_infop info = ctx->info;
    if (setjmp(png_jmpbuf(png))) return -1;

    png_set_read_fn(png, ctx, png_on_read);
    /* text, ICC profiles and the other ancillary chunks are never used: libpng
     * skips them unread (fuzz_png: a 144-byte file of zTXt chunks took 20 s
     * of decompression) */
    static const png_byte skip[] = "bKGD\0cHRM\0eXIf\0gAMA\0hIST\0iCCP\0iTXt\0oFFs\0pCAL\0pHYs\0"
                                   "sCAL\0sBIT\0sPLT\0sRGB\0tEXt\0tIME\0zTXt";
    png_set_keep_unknown_chunks(png, PNG_HANDLE_CHUNK_NEVER, NULL, 0);
    png_set_keep_unknown_chunks(png, PNG_HANDLE_CHUNK_NEVER, skip, (int)(sizeof skip / 5));
    png_read_info(png, info);
    png_uint_32 w = png_get_image_width(png, info);
    png_uint_32 h = png_get_image_height(png, info);
    int ctype = png_get_color_type(png, info);
    if (ctype == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (ctype == PNG_COLOR_TYPE_GRAY && png_get_bit_depth(png, info) < 8)
        png_set_expand_gray_1_2_4_to_8(png);
    (void)png_set_interlace_handling(png);
    /* before anything is allocated: deflate packs at most 1032 bytes into
     * one (the stored bits per pixel: 1 for 1-bit gray, 64 for 16-bit RGBA) */
    double bits = (double)png_get_bit_depth(png, info) * (double)png_get_channels(png, info);
    if (fv_image_check_dims(ctx->path, "PNG", w, h, ctx->file_bytes, 1032.0 * 8.0 / bits, &ctx->err))
        png_error(png, "size check");
    png_read_update_info(png, info);

    int chans = png_get_channels(png, info); /* 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA */
    int depth = png_get_bit_depth(png, info); /* 8 or 16 after the expansions */
    size_t rowbytes = png_get_rowbytes(png, info);
    if (chans < 1 || chans > 4 || (depth != 8 && depth != 16) || w > 0x7fffffffu ||
        h > 0x7fffffffu)
        png_error(png, "unexpected pixel layout after expansion");
    int bps = depth / 8; /* bytes per sample */
    if (rowbytes < (size_t)w * (size_t)chans * (size_t)bps) png_error(png, "row size mismatch");

    size_t raw_bytes, out_count;
    ctx->h = (int)h;
    ctx->w = (int)w;
    ctx->c = chans <= 2 ? 1 : 3;
    if (!fv_mul_size(rowbytes, h, &raw_bytes) || !fv_mul_size((size_t)w * h, (size_t)ctx->c,
                                                              &out_count) ||
        out_count > SIZE_MAX / sizeof(float))
        png_error(png, "image too large");
    ctx->raw = malloc(raw_bytes ? raw_bytes : 1);
    ctx->rows = malloc(sizeof(png_bytep) * (h ? h : 1));
    ctx->data = malloc(out_count * sizeof(float) + 1);
    if (!ctx->raw || !ctx->rows || !ctx->data) png_error(png, "out of memory");
    for (png_uint_32 y = 0; y < h; y++) ctx->rows[y] = ctx->raw + (size_t)y * rowbytes;
    png_read_image(png, ctx->rows);
    png_read_end(png, NULL);

    /* raw (h, w, chans) 8 or 16-bit big-endian -> data (h, w, c) floats; alpha dropped */
    for (png_uint_32 y = 0; y < h; y++) {
        const unsigned char *src = ctx->rows[y];
        float *dst = ctx->data + (size_t)y * w * (size_t)ctx->c;
        for (png_uint_32 x = 0; x < w; x++) {
            for (int k = 0; k < ctx->c; k++) {
                const unsigned char *p = src + ((size_t)x * (size_t)chans + (size_t)k) * (size_t)bps;
                dst[(size_t)x * (size_t)ctx->c + (size_t)k] =
                    bps == 1 ? (float)p[0] : (float)((p[0] << 8) | p[1]) / 257.0f;
            }
        }
    }
    return 0;
}

int fv_png_read(const char *path, struct fv_image *img, struct fv_error *err) {
    struct png_read_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    int rc = FV_OK;
    ctx.fp = fopen(path, "rb");
    if (!ctx.fp) return fv_error_set(err, FV_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    ctx.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &ctx, png_on_error, png_on_warning);
    if (ctx.png) ctx.info = png_create_info_struct(ctx.png);
    if (!ctx.png || !ctx.info) {
        rc = fv_error_set(err, FV_ERR_NOMEM, "%s: cannot initialise libpng", path);
        goto done;
    }
    ctx.path = path;
    ctx.file_bytes = fv_file_bytes(ctx.fp);
    if (png_decode_guarded(&ctx) != 0) {
        if (ctx.err.code)
            rc = fv_error_set(err, ctx.err.code, "%s", ctx.err.msg);
        else if (ctx.truncated)
            rc = fv_error_set(err, FV_ERR_FORMAT, "%s: truncated PNG file", path);
        else if (strcmp(ctx.msg, "out of memory") == 0)
            rc = fv_error_set(err, FV_ERR_NOMEM, "%s: out of memory decoding PNG", path);
        else
            rc = fv_error_set(err, FV_ERR_FORMAT, "%s: bad PNG: %s", path, ctx.msg);
        goto done;
    }
    img->h = ctx.h;
    img->w = ctx.w;
    img->c = ctx.c;
    img->data = ctx.data;
    ctx.data = NULL;
done:
    if (ctx.png) png_destroy_read_struct(&ctx.png, ctx.info ? &ctx.info : NULL, NULL);
    free(ctx.rows);
    free(ctx.raw);
    free(ctx.data);
    fclose(ctx.fp);
    return rc;
}

int fv_png_write(const char *path, const unsigned char *pix, int h, int w, int c,
                 struct fv_error *err) {
    if (h <= 0 || w <= 0 || (c != 1 && c != 3 && c != 4))
        return fv_error_set(err, FV_ERR_USAGE, "%s: cannot write a %dx%dx%d image as PNG", path,
                            h, w, c);
    struct fv_tmpfile t;
    int rc = fv_tmpfile_open(&t, path, err);
    if (rc != FV_OK) return rc;

    png_image im;
    memset(&im, 0, sizeof im);
    im.version = PNG_IMAGE_VERSION;
    im.width = (png_uint_32)w;
    im.height = (png_uint_32)h;
    im.format = c == 1 ? PNG_FORMAT_GRAY : c == 3 ? PNG_FORMAT_RGB : PNG_FORMAT_RGBA;
    if (!png_image_write_to_stdio(&im, (FILE *)t.fp, 0, pix, 0, NULL)) {
        rc = fv_error_set(err, FV_ERR_IO, "%s: cannot write PNG: %s", path, im.message);
        png_image_free(&im);
        fv_tmpfile_abort(&t);
        return rc;
    }
    png_image_free(&im);
    return fv_tmpfile_commit(&t, err);
}

/* ---- fast 8-bit gray writer (activations.format = png8) ---- */

struct png_write_ctx {
    png_structp png;
    png_infop info;
    FILE *fp;
    const unsigned char *pix;
    int h, w;
    const struct fv_png_text *text;
    int n_text;
    char msg[256];
};

static void png_on_write_error(png_structp png, png_const_charp msg) {
    struct png_write_ctx *ctx = png_get_error_ptr(png);
    snprintf(ctx->msg, sizeof ctx->msg, "%s", msg);
    png_longjmp(png, 1);
}

/* Encodes ctx->pix into ctx->fp; returns 0, or -1 after a libpng error (ctx->msg). */
static int png_encode_gray_guarded(struct png_write_ctx *ctx) {
    png_structp png = ctx->png;
    png_infop info = ctx->info;
    if (setjmp(png_jmpbuf(png))) return -1;
    png_init_io(png, ctx->fp);
    /* speed over size: zlib's fastest level, and the Sub filter alone (libpng's
     * default tries all five filters on every row) */
    png_set_compression_level(png, 1);
    png_set_filter(png, PNG_FILTER_TYPE_BASE, PNG_FILTER_SUB);
    png_set_IHDR(png, info, (png_uint_32)ctx->w, (png_uint_32)ctx->h, 8, PNG_COLOR_TYPE_GRAY,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_BASE, PNG_FILTER_TYPE_BASE);
    png_text t[8];
    int n = ctx->n_text < 8 ? ctx->n_text : 8;
    for (int i = 0; i < n; i++) {
        memset(&t[i], 0, sizeof t[i]);
        t[i].compression = PNG_TEXT_COMPRESSION_NONE;
        t[i].key = (png_charp)ctx->text[i].key;
        t[i].text = (png_charp)ctx->text[i].value;
    }
    if (n) png_set_text(png, info, t, n);
    png_write_info(png, info);
    for (int y = 0; y < ctx->h; y++) png_write_row(png, ctx->pix + (size_t)y * (size_t)ctx->w);
    png_write_end(png, NULL);
    return 0;
}

int fv_png_write_gray8(const char *path, const unsigned char *pix, int h, int w,
                       const struct fv_png_text *text, int n_text, struct fv_error *err) {
    if (h <= 0 || w <= 0 || h > 1000000 || w > 1000000)
        return fv_error_set(err, FV_ERR_USAGE, "%s: cannot write a %dx%d image as PNG", path, h, w);
    struct fv_tmpfile t;
    int rc = fv_tmpfile_open(&t, path, err);
    if (rc != FV_OK) return rc;
    struct png_write_ctx ctx = {.fp = t.fp, .pix = pix, .h = h, .w = w, .text = text, .n_text = n_text};
    ctx.png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &ctx, png_on_write_error, png_on_warning);
    ctx.info = ctx.png ? png_create_info_struct(ctx.png) : NULL;
    if (!ctx.info) snprintf(ctx.msg, sizeof ctx.msg, "out of memory");
    if (!ctx.info || png_encode_gray_guarded(&ctx)) {
        rc = fv_error_set(err, FV_ERR_IO, "%s: cannot write PNG: %s", path, ctx.msg);
        if (ctx.png) png_destroy_write_struct(&ctx.png, ctx.info ? &ctx.info : NULL);
        fv_tmpfile_abort(&t);
        return rc;
    }
    png_destroy_write_struct(&ctx.png, &ctx.info);
    return fv_tmpfile_commit(&t, err);
}
