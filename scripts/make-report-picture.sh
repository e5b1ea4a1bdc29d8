#!/usr/bin/env bash
# Regenerates docs/images/report.png: the thumbnails example run with the local executor from a
# neutral directory (/tmp/hpcpipe-demo, so the page shows no path of this machine's checkout),
# its report, and a 1200x1800 screenshot by headless Chromium. Needs `npm run build`, blender,
# ffmpeg and chromium (scripts/install-test-tools.sh).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
demo=/tmp/hpcpipe-demo
rm -rf "$demo"
mkdir -p "$demo"
cp -r "$repo/examples/thumbnails" "$demo/thumbnails"
cd "$demo"
node "$repo/dist/cli/main.js" run thumbnails/pipeline.yaml -q >/dev/null
run=$(ls -d .hpcpipe/runs/thumbnails/*)
node "$repo/dist/cli/main.js" report "$run" --out report.html >/dev/null
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --force-device-scale-factor=1 \
  --user-data-dir="$demo/profile" --screenshot="$demo/report.png" --window-size=1200,1800 \
  "file://$demo/report.html" 2>/dev/null
cp "$demo/report.png" "$repo/docs/images/report.png"
echo "docs/images/report.png <- $demo/$run"
