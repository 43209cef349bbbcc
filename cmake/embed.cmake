# Embeds the report's page (src/report/index.html, report.css, report.js) into
# the binary: writes OUT, a C file with each as a byte array
# fv_asset_<file name as C identifier> and its length fv_asset_<...>_len.
# Run at build time (cmake -DDIR=src/report -DOUT=report_assets.c -P embed.cmake).
set(src "/* generated from ${DIR} by cmake/embed.cmake: do not edit */\n#include \"report/assets.h\"\n")
foreach(name index.html report.css report.js)
  string(MAKE_C_IDENTIFIER "${name}" id)
  file(READ "${DIR}/${name}" hex HEX)
  string(LENGTH "${hex}" n)
  math(EXPR n "${n} / 2")
  # 32 bytes a line
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," hex "${hex}")
  string(REGEX REPLACE "((0x..,){32})" "\\1\n" hex "${hex}")
  string(APPEND src "const unsigned char fv_asset_${id}[] = {\n${hex}0};\nconst size_t fv_asset_${id}_len = ${n};\n")
endforeach()
file(WRITE "${OUT}.tmp" "${src}")
file(RENAME "${OUT}.tmp" "${OUT}")
