#!/bin/bash
# bench/wrapper-overhead.sh (issue 16): the job wrapper's cost per packed map item, on this machine.
# For each LIB (a templates/lib.sh), runs one packed map task of N items (2 steps of `true` each, one
# item at a time: SLURM_CPUS_PER_TASK=1) in a throwaway run directory and prints
#   - wall time and CPU time (user + sys, the task and all its processes) per item, and the same minus 2 x
#     those of `bash -c true` (the steps' own commands), measured just before each LIB: the wrapper's overhead;
#   - programs started (execve) and processes forked (clone) per item, under `strace -f` (M items against
#     1 item, over M-1), when strace is installed;
#   - files left in states/ and logs/.
# Each LIB runs ROUNDS times (default 3), each time just after its baseline; the medians are printed last.
# -c: with a step cache store (the default on a cluster): every step has a cache key, and each item's
# two steps are stored in it as they succeed.
# Usage: bash bench/wrapper-overhead.sh [-n N] [-m M] [-r ROUNDS] [-c] LIB... (e.g. `git show main:templates/lib.sh > /tmp/old.sh`).
set -u
n=1000 m=50 rounds=3 cache=0
while getopts n:m:r:c o; do case $o in n) n=$OPTARG ;; m) m=$OPTARG ;; r) rounds=$OPTARG ;; c) cache=1 ;; *) exit 2 ;; esac; done
shift $((OPTIND - 1))
(($# > 0)) || { echo "usage: $0 [-n N] [-m M] [-r ROUNDS] [-c] LIB..." >&2; exit 2; }
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
  if ((cache)); then
    rm -rf -- "$dir.store"
    mkdir -p -- "$dir/cache/keys" "$dir.store"
    printf '%s\n\n' "$dir.store" >"$dir/cache/store"
    # One 64-hex key per item and step: 65-byte lines.
    awk -v n="$items" 'BEGIN { for (i = 0; i < n; i++) printf "%064x\n", i }' >"$dir/cache/keys/m.{i}.a.keys"
    awk -v n="$items" 'BEGIN { for (i = 0; i < n; i++) printf "%064x\n", i + 1000000000 }' >"$dir/cache/keys/m.{i}.b.keys"
    # Each step's family (the store directory its entries go to); a lib.sh before families ignores them.
    printf '%064x\n' 1 >"$dir/cache/keys/m.{i}.a.family"
    printf '%064x\n' 2 >"$dir/cache/keys/m.{i}.b.family"
  fi
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
# median VALUE...: the middle value (the lower of the two middle ones).
median() { printf '%s\n' "$@" | sort -n | sed -n "$(((${#} + 1) / 2))p"; }
declare -A ow=() oc=() tot=()
b="" t=""
for ((round = 1; round <= rounds; round++)); do
  for ((k = 1; k <= $#; k++)); do
    lib=${!k}
    # The baseline just before each library, so both see the same load.
    timed b baseline
    read -r bw bc <<<"$b"
    bw=$((bw / n)) bc=$((bc / n))
    prepare "$lib" "$n" "$tmp/run"
    timed t run_task "$n" "$tmp/run"
    read -r tw tc <<<"$t"
    tw=$((tw / n)) tc=$((tc / n))
    ow[$k]+=" $((tw - 2 * bw))" oc[$k]+=" $((tc - 2 * bc))" tot[$k]+=" $tw/$tc"
    printf 'round %d: bash -c true %s ms wall, %s ms CPU; %s: per item (2 steps) %s ms wall, %s ms CPU; overhead %s ms wall, %s ms CPU\n' \
      "$round" "$(ms "$bw")" "$(ms "$bc")" "$lib" "$(ms "$tw")" "$(ms "$tc")" "$(ms $((tw - 2 * bw)))" "$(ms $((tc - 2 * bc)))"
  done
done
for ((k = 1; k <= $#; k++)); do
  lib=${!k}
  prepare "$lib" "$n" "$tmp/run"
  run_task "$n" "$tmp/run"
  files=$(find "$tmp/run/states" "$tmp/run/logs" -type f | wc -l)
  ((cache)) && files+=" (and $(find "$tmp/run.store/cache" -type f | wc -l) in the store's cache/)"
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
  # shellcheck disable=SC2086 # the lists are numbers
  printf '%s: overhead per item, median of %d rounds: %s ms wall, %s ms CPU; %s programs started (2 are the steps), %s processes forked; %s files in states/+logs/ for %d items\n' \
    "$lib" "$rounds" "$(ms "$(median ${ow[$k]})")" "$(ms "$(median ${oc[$k]})")" "$execs" "$forks" "$files" "$n"
done
