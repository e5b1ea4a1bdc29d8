#!/bin/bash
# bench/wrapper-overhead.sh (issue 16): the job wrapper's cost per packed map item, on this machine.
# For each LIB (a templates/lib.sh), runs one packed map task of N items (2 steps of `true` each, one
# item at a time: SLURM_CPUS_PER_TASK=1) in a throwaway run directory and prints
#   - wall time and CPU time (user + sys, the task and all its processes) per item, and the same minus 2 x
#     those of `bash -c true` (the steps' own commands), measured just before each LIB: the wrapper's overhead;
#   - programs started (execve) and processes forked (clone) per item, under `strace -f` (M items against
#     1 item, over M-1), when strace is installed;
#   - files left in states/ and logs/.
# Usage: bash bench/wrapper-overhead.sh [-n N] [-m M] LIB... (e.g. `git show main:templates/lib.sh > /tmp/old.sh`).
set -u
n=1000 m=50
while getopts n:m: o; do case $o in n) n=$OPTARG ;; m) m=$OPTARG ;; *) exit 2 ;; esac; done
shift $((OPTIND - 1))
(($# > 0)) || { echo "usage: $0 [-n N] [-m M] LIB..." >&2; exit 2; }
now_us() { REPLY=${EPOCHREALTIME/./}; }
# timed VAR CMD...: VAR := "wall_us cpu_us" of CMD (with its children).
timed() {
  local __var=$1 TIMEFORMAT='%3R %3U %3S' out r u s
  shift
  out=$({ time "$@" >/dev/null 2>&1; } 2>&1)
  read -r r u s <<<"$out"
  r=${r/./} u=${u/./} s=${s/./}
  printf -v "$__var" '%d %d' $((10#$r * 1000)) $(((10#$u + 10#$s) * 1000))
}
ms() { printf '%s%d.%03d' "$( (($1 < 0)) && echo -)" $(((${1#-}) / 1000)) $(((${1#-}) % 1000)); }
baseline() { local i; for ((i = 0; i < n; i++)); do bash -c true; done; }
job_script() {
  cat <<'JOB'
#!/bin/bash
export HPCPIPE_RUN_DIR=$1
source "$HPCPIPE_RUN_DIR/scripts/lib.sh" || exit 1
hp_job_begin j001 0 1
hp_item() {
hp_unit_begin 'm.{i}' fedcba987654 0
hp_step --key 'm.{i}.a' --signature 0123456789ab --idempotent --command 'true'
hp_step --key 'm.{i}.b' --signature 0123456789ab --idempotent --command 'true'
hp_unit_end
}
hp_map_pack items/m.txt it "$2" 1 hp_item $3
hp_job_end
JOB
}
# prepare LIB ITEMS DIR: a fresh run directory for one task of ITEMS items (not timed).
prepare() {
  local lib=$1 items=$2 dir=$3
  rm -rf -- "$dir"
  mkdir -p -- "$dir/scripts" "$dir/items"
  cp -- "$lib" "$dir/scripts/lib.sh"
  job_script >"$dir/job.sh"
  seq 0 $((items - 1)) | sed 's/^/item-/' >"$dir/items/m.txt"
  : >"$dir/context.env0"
}
# run_task ITEMS DIR [strace-out]: runs the task prepared in DIR.
run_task() {
  local items=$1 dir=$2 trace=${3:-}
  local -a cmd=(env SLURM_ARRAY_TASK_ID=0 SLURM_ARRAY_JOB_ID=1 SLURM_JOB_ID=2 SLURM_CPUS_PER_TASK=1 bash "$dir/job.sh" "$dir" "$items" m)
  if [[ -n $trace ]]; then
    strace -f -qq -e trace=execve,clone,clone3,fork,vfork -o "$trace" "${cmd[@]}" 2>/dev/null
  else
    "${cmd[@]}" 2>/dev/null
  fi
}
tmp=$(mktemp -d)
trap 'rm -rf -- "$tmp"' EXIT
b="" t=""
for lib in "$@"; do
  timed b baseline
  read -r bw bc <<<"$b"
  bw=$((bw / n)) bc=$((bc / n))
  prepare "$lib" "$n" "$tmp/run"
  timed t run_task "$n" "$tmp/run"
  read -r tw tc <<<"$t"
  tw=$((tw / n)) tc=$((tc / n))
  printf 'bash -c true: %s ms wall, %s ms CPU\n' "$(ms "$bw")" "$(ms "$bc")"
  files=$(find "$tmp/run/states" "$tmp/run/logs" -type f | wc -l)
  execs="-" forks="-"
  if command -v strace >/dev/null; then
    prepare "$lib" "$m" "$tmp/trace-run"
    run_task "$m" "$tmp/trace-run" "$tmp/trace"
    prepare "$lib" 1 "$tmp/trace-run"
    run_task 1 "$tmp/trace-run" "$tmp/trace1"
    # Per item: the difference between M items and 1 item, over M-1 (the task's own start-up cancels out).
    per_item() { awk -v a="$(grep -cE "$1" "$tmp/trace")" -v b="$(grep -cE "$1" "$tmp/trace1")" -v m="$m" 'BEGIN { printf "%.2f", (a - b) / (m - 1) }'; }
    execs=$(per_item ' execve\(')
    forks=$(per_item ' (clone3?|v?fork)\(')
  fi
  printf '%s: per item (2 steps) %s ms wall, %s ms CPU; overhead %s ms wall, %s ms CPU; %s programs started (2 are the steps), %s processes forked; %s files in states/+logs/ for %d items\n' \
    "$lib" "$(ms "$tw")" "$(ms "$tc")" "$(ms $((tw - 2 * bw)))" "$(ms $((tc - 2 * bc)))" "$execs" "$forks" "$files" "$n"
done
