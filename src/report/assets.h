/* The report's page, embedded at build time by cmake/embed.cmake from the
 * files of src/report/ (each NUL-terminated; _len excludes the NUL). */
#ifndef FEATVIZ_REPORT_ASSETS_H
#define FEATVIZ_REPORT_ASSETS_H

#include <stddef.h>

extern const unsigned char fv_asset_index_html[];
extern const size_t fv_asset_index_html_len;
extern const unsigned char fv_asset_report_css[];
extern const size_t fv_asset_report_css_len;
extern const unsigned char fv_asset_report_js[];
extern const size_t fv_asset_report_js_len;

#endif
