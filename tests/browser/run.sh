#!/usr/bin/env bash
# ctest report_browser: a small `featviz run` of the demo model (report.ini),
# then its index.html opened in Debian's chromium by report.test.js.
#   tests/browser/run.sh FEATVIZ_BINARY OUTPUT_DIR
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/../.."
rm -rf "$2"
"$1" run tests/browser/report.ini --set output.dir="$2" >/dev/null
[ -d "$here/node_modules/puppeteer-core" ] || (cd "$here" && npm ci --no-audit --no-fund >/dev/null)
exec node "$here/report.test.js" "$2"
