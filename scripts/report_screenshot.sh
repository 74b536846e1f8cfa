#!/usr/bin/env bash
# Render an HTML report in headless Chromium and save a full-page PNG, to check what a reader sees.
# Usage: scripts/report_screenshot.sh outputs/report.html outputs/report.png [width] [height]
# Needs Chromium (Debian: apt-get install chromium). Runs offline: every network feature is switched off.
set -euo pipefail
html=$(realpath "$1")
png=$2
width=${3:-1200}
height=${4:-4200}
browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
if [ -z "$browser" ]; then
  echo "no Chromium found: install it (apt-get install chromium) to screenshot the report" >&2
  exit 2
fi
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
"$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$profile" --hide-scrollbars --window-size="${width},${height}" \
  --screenshot="$(realpath -m "$png")" "file://$html" >/dev/null 2>&1
test -s "$png" && echo "screenshot -> $png"
