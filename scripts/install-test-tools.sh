#!/usr/bin/env bash
# Installs the command-line tools the test suite uses besides the SLURM
# cluster (scripts/cluster/up.sh): shellcheck, to lint every rendered job script;
# blender, python3-numpy (Blender's glTF importer needs it) and ffmpeg, for the
# thumbnail example (examples/thumbnails/); chromium (headless), to render and
# screenshot the HTML run reports (`hpcpipe report`); inotify-tools, for the
# inotify path of the state watcher (templates/watch-states.sh); tmux, to read the
# live progress view through a real terminal (test/cli/progress-tmux.test.ts).
# Idempotent; needs root and apt-get only when something is missing.
set -euo pipefail

missing=()
command -v shellcheck >/dev/null 2>&1 || missing+=(shellcheck)
command -v blender >/dev/null 2>&1 || missing+=(blender)
# A library, not a command: ask dpkg (the Debian blender package does not pull it in).
dpkg-query -W -f='${Status}' python3-numpy 2>/dev/null | grep -q 'install ok installed' || missing+=(python3-numpy)
command -v ffmpeg >/dev/null 2>&1 || missing+=(ffmpeg)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
# The state watcher of `status --watch` lets inotifywait wake its scan early when the cluster has it.
command -v inotifywait >/dev/null 2>&1 || missing+=(inotify-tools)
command -v tmux >/dev/null 2>&1 || missing+=(tmux)
[ "${#missing[@]}" -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "install-test-tools: missing ${missing[*]}; installing needs root and apt-get (Debian)." >&2
  echo "install-test-tools: install them yourself, e.g. 'sudo apt-get install -y --no-install-recommends ${missing[*]}'." >&2
  exit 2
fi
export DEBIAN_FRONTEND=noninteractive
echo "install-test-tools: installing ${missing[*]} (blender: about 25 s and 600 MB the first time; chromium: about 10 s and 360 MB)" >&2
apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null 2>&1 || {
  apt-get update >/dev/null
  apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null
}
echo "install-test-tools: installed ${missing[*]}" >&2
