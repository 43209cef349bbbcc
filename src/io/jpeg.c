/* JPEG reading: the only file that includes <jpeglib.h>. libjpeg reports
 * errors through error_exit, which must not return: ours longjmps back into
 * jpeg_decode_guarded, so a corrupt file is an error, never an exit().
 * A file that ends early is only a warning for libjpeg (it pads the image
 * with gray); we make it an error. */
#include "io/decode.h"

#include <errno.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>

/* Everything the guarded decoder touches lives here, in the caller's frame. */
struct jpeg_ctx {
    struct jpeg_error_mgr pub; /* first member: cinfo.err points here */
    jmp_buf jump;
    struct jpeg_decompress_struct cinfo;
    int created;
    int truncated;
    FILE *fp;
    unsigned char *row; /* (w * components) one decoded scanline */
    float *data;        /* (h, w, c) output */
    int h, w, c;
    char msg[JMSG_LENGTH_MAX + 64];
    const char *path;
    size_t file_bytes;
    struct fv_error err; /* set by the size check */
};

static void jpeg_on_error(j_common_ptr ci) {
    struct jpeg_ctx *ctx = (struct jpeg_ctx *)(void *)ci->err;
    char buf[JMSG_LENGTH_MAX];
    ci->err->format_message(ci, buf);
    snprintf(ctx->msg, sizeof ctx->msg, "%s", buf);
    longjmp(ctx->jump, 1);
}

/* Warnings (level -1) are ignored except "premature end of file". */
static void jpeg_on_message(j_common_ptr ci, int level) {
    struct jpeg_ctx *ctx = (struct jpeg_ctx *)(void *)ci->err;
    if (level == -1 && ci->err->msg_code == JWRN_JPEG_EOF) {
        ctx->truncated = 1;
        jpeg_on_error(ci);
    }
}

static void jpeg_on_output(j_common_ptr ci) {
    (void)ci;
}

/* Returns 0, -1 after a libjpeg error (ctx->msg), -2 for a refusal (ctx->msg),
 * -3 for a size refusal (ctx->err). */
static int jpeg_decode_guarded(struct jpeg_ctx *ctx) {
    struct jpeg_decompress_struct *ci = &ctx->cinfo;
    if (setjmp(ctx->jump)) return -1;
    jpeg_create_decompress(ci);
    ctx->created = 1;
    jpeg_stdio_src(ci, ctx->fp);
    (void)jpeg_read_header(ci, TRUE);
    /* before libjpeg allocates (a progressive file keeps every coefficient):
     * each 8x8 block costs at least one bit of entropy-coded data */
    if (fv_image_check_dims(ctx->path, "JPEG", ci->image_width, ci->image_height, ctx->file_bytes,
                            64.0 * 8.0, &ctx->err))
        return -3;

    int cmyk = 0;
    switch (ci->jpeg_color_space) {
    case JCS_GRAYSCALE:
        ci->out_color_space = JCS_GRAYSCALE;
        break;
    case JCS_RGB:
    case JCS_YCbCr:
        ci->out_color_space = JCS_RGB;
        break;
    case JCS_CMYK:
    case JCS_YCCK: /* libjpeg turns YCCK into CMYK; we go on to RGB below */
        ci->out_color_space = JCS_CMYK;
        cmyk = 1;
        break;
    default:
        snprintf(ctx->msg, sizeof ctx->msg, "unsupported JPEG color space %d",
                 (int)ci->jpeg_color_space);
        return -2;
    }
    (void)jpeg_start_decompress(ci);
    int comps = ci->output_components;
    if (comps != (cmyk ? 4 : ci->out_color_space == JCS_GRAYSCALE ? 1 : 3)) {
        snprintf(ctx->msg, sizeof ctx->msg, "unexpected %d output components", comps);
        return -2;
    }
    if (ci->output_width > 0x7fffffffu || ci->output_height > 0x7fffffffu) {
        snprintf(ctx->msg, sizeof ctx->msg, "image too large");
        return -2;
    }
    ctx->w = (int)ci->output_width;
    ctx->h = (int)ci->output_height;
    ctx->c = comps == 1 ? 1 : 3;
    size_t out_count;
    if (!fv_mul_size((size_t)ctx->w * (size_t)ctx->h, (size_t)ctx->c, &out_count) ||
        out_count > SIZE_MAX / sizeof(float)) {
        snprintf(ctx->msg, sizeof ctx->msg, "image too large");
        return -2;
    }
    ctx->row = malloc((size_t)ctx->w * (size_t)comps + 1);
    ctx->data = malloc(out_count * sizeof(float) + 1);
    if (!ctx->row || !ctx->data) {
        snprintf(ctx->msg, sizeof ctx->msg, "out of memory");
        return -2;
    }
    /* Adobe CMYK JPEGs (the ones libjpeg and Photoshop write) store inverted
     * inks; R = (255-C)(255-K)/255 as PIL's CMYK -> RGB conversion. */
    int inverted = ci->saw_Adobe_marker;
    while (ci->output_scanline < ci->output_height) {
        float *dst = ctx->data + (size_t)ci->output_scanline * (size_t)ctx->w * (size_t)ctx->c;
        JSAMPROW r = ctx->row;
        if (jpeg_read_scanlines(ci, &r, 1) != 1) {
            snprintf(ctx->msg, sizeof ctx->msg, "no scanline decoded");
            return -2;
        }
        const unsigned char *src = ctx->row; /* (w, comps) */
        if (!cmyk) {
            for (size_t i = 0; i < (size_t)ctx->w * (size_t)comps; i++) dst[i] = (float)src[i];
            continue;
        }
        for (int x = 0; x < ctx->w; x++) {
            const unsigned char *p = src + 4 * (size_t)x;
            int k = inverted ? p[3] : 255 - p[3]; /* 255 - K */
            for (int ch = 0; ch < 3; ch++) {
                int ink = inverted ? p[ch] : 255 - p[ch]; /* 255 - C, M or Y */
                dst[3 * (size_t)x + (size_t)ch] = (float)(ink * k) / 255.0f;
            }
        }
    }
    (void)jpeg_finish_decompress(ci);
    return 0;
}

int fv_jpeg_read(const char *path, struct fv_image *img, struct fv_error *err) {
    struct jpeg_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx) return fv_error_set(err, FV_ERR_NOMEM, "%s: out of memory", path);
    int rc = FV_OK;
    ctx->fp = fopen(path, "rb");
    if (!ctx->fp) {
        rc = fv_error_set(err, FV_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        goto done;
    }
    ctx->cinfo.err = jpeg_std_error(&ctx->pub);
    ctx->pub.error_exit = jpeg_on_error;
    ctx->pub.emit_message = jpeg_on_message;
    ctx->pub.output_message = jpeg_on_output;
    ctx->path = path;
    ctx->file_bytes = fv_file_bytes(ctx->fp);
    int st = jpeg_decode_guarded(ctx);
    if (st != 0) {
        if (st == -3)
            rc = fv_error_set(err, ctx->err.code, "%s", ctx->err.msg);
        else if (ctx->truncated)
            rc = fv_error_set(err, FV_ERR_FORMAT, "%s: truncated JPEG file", path);
        else if (strcmp(ctx->msg, "out of memory") == 0)
            rc = fv_error_set(err, FV_ERR_NOMEM, "%s: out of memory decoding JPEG", path);
        else if (st == -2)
            rc = fv_error_set(err, FV_ERR_UNSUPPORTED, "%s: %s", path, ctx->msg);
        else
            rc = fv_error_set(err, FV_ERR_FORMAT, "%s: bad JPEG: %s", path, ctx->msg);
        goto done;
    }
    img->h = ctx->h;
    img->w = ctx->w;
    img->c = ctx->c;
    img->data = ctx->data;
    ctx->data = NULL;
done:
    if (ctx->created) jpeg_destroy_decompress(&ctx->cinfo);
    if (ctx->fp) fclose(ctx->fp);
    free(ctx->row);
    free(ctx->data);
    free(ctx);
    return rc;
}
