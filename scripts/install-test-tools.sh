#!/usr/bin/env bash
# Installs the command-line tools the test suite uses besides the SLURM
# cluster (scripts/cluster/up.sh): shellcheck, to lint every rendered job script.
# Idempotent; needs root and apt-get only when something is missing.
set -euo pipefail

missing=()
command -v shellcheck >/dev/null 2>&1 || missing+=(shellcheck)
[ "${#missing[@]}" -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "install-test-tools: missing ${missing[*]}; installing needs root and apt-get (Debian)." >&2
  echo "install-test-tools: install them yourself, e.g. 'sudo apt-get install -y ${missing[*]}'." >&2
  exit 2
fi
export DEBIAN_FRONTEND=noninteractive
apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null 2>&1 || {
  apt-get update >/dev/null
  apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null
}
echo "install-test-tools: installed ${missing[*]}" >&2
