#!/usr/bin/env bash
# Reproduces the REAL SLURM outputs in test/fixtures/slurm/*.json by running
# real jobs on the local test cluster (scripts/cluster/up.sh), so the parsers in
# src/slurm are tested against what SLURM prints, not against memory.
#
#   sudo bash scripts/capture-slurm-output.sh [OUT_DIR]   (default test/fixtures/slurm)
#
# Needs root (runuser, scontrol suspend/requeue) and a running test cluster with
# accounting on. It never reconfigures the cluster: the "accounting disabled"
# and "database unreachable" sacct outputs come from the real sacct binary run
# with SLURM_CONF pointing at a private copy of slurm.conf (storage type none,
# or a dead slurmdbd port) -- sacct decides both from its own config file, so
# the output is byte-for-byte what a cluster configured that way prints.
# Takes about 90 s (the TIMEOUT job alone needs ~65 s). Every job it submits is
# named hpcpipe-capture-* and is cancelled or finished when it exits.
#
# Each capture is one JSON file: {name, note, synthetic:false, slurmVersion,
# runAs, env, argv, code, stdout, stderr}; index.json maps each case to the
# job id it got in this run. synthetic-*.json files are hand-written (states
# this cluster cannot produce) and are not touched by this script.
set -euo pipefail

REPO_ROOT="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${1:-$REPO_ROOT/test/fixtures/slurm}"
FACTS="${HPCPIPE_TESTCLUSTER_DIR:-/var/lib/hpcpipe-testcluster}/connection.json"

[[ $(id -u) == 0 ]] || { echo "run as root (needs runuser and scontrol suspend/requeue)" >&2; exit 2; }
[[ -r "$FACTS" ]] || { echo "no $FACTS: start the cluster with scripts/cluster/up.sh" >&2; exit 2; }
command -v jq >/dev/null || { echo "needs jq" >&2; exit 2; }

USER_NAME=$(jq -r .user "$FACTS")
PARTITION=$(jq -r .partition "$FACTS")
[[ $(jq -r .accounting "$FACTS") == true ]] || { echo "the cluster must run with accounting on" >&2; exit 2; }
SLURM_VERSION=$(dpkg-query -W -f='${Version}' slurm-client 2>/dev/null || echo unknown)
STAMP=$(date +%s)
TAG="hpcpipe:capture-$STAMP"
SQUEUE_FORMAT='%i|%A|%F|%K|%T|%r|%E|%k'
SACCT_FIELDS='JobID,JobIDRaw,State,ExitCode,Reason'

WORK=$(mktemp -d /tmp/hpcpipe-capture.XXXXXX)
chmod 755 "$WORK"
mkdir -p "$OUT"
declare -A IDS=()
SUBMITTED=()

cleanup() {
  if ((${#SUBMITTED[@]} > 0)); then scancel "${SUBMITTED[@]}" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

log() { printf '[capture] %s\n' "$*" >&2; }

json_array() {
  local json='[]' word
  for word in "$@"; do json=$(jq -c --arg w "$word" '. + [$w]' <<<"$json"); done
  printf '%s' "$json"
}

# capture NAME RUNAS NOTE -- ARGV...   (CAPTURE_ENV="K=V" prefixes the environment)
capture() {
  local name=$1 runas=$2 note=$3 code=0
  shift 4
  local out="$WORK/$name.out" err="$WORK/$name.err" envjson='{}'
  local -a prefix=()
  if [[ -n "${CAPTURE_ENV:-}" ]]; then
    prefix=(env "$CAPTURE_ENV")
    envjson=$(jq -cn --arg k "${CAPTURE_ENV%%=*}" --arg v "${CAPTURE_ENV#*=}" '{($k): $v}')
  fi
  if [[ $runas == root ]]; then
    "${prefix[@]}" "$@" >"$out" 2>"$err" || code=$?
  else
    runuser -u "$runas" -- "${prefix[@]}" "$@" >"$out" 2>"$err" || code=$?
  fi
  jq -n --arg name "$name" --arg note "$note" --arg slurm "$SLURM_VERSION" --arg runAs "$runas" \
    --argjson env "$envjson" --argjson argv "$(json_array "$@")" --argjson code "$code" \
    --rawfile stdout "$out" --rawfile stderr "$err" \
    '{name: $name, note: $note, synthetic: false, slurmVersion: $slurm, runAs: $runAs, env: $env,
      argv: $argv, code: $code, stdout: $stdout, stderr: $stderr}' >"$OUT/$name.json"
  log "captured $name (exit $code)"
}

as_user() { runuser -u "$USER_NAME" -- "$@"; }

script_file() { # script_file NAME BODY -> path of an executable job script
  local file="$WORK/$1.sh"
  printf '#!/bin/bash\n%s\n' "$2" >"$file"
  chmod 755 "$file"
  printf '%s' "$file"
}

# submit CASE BODY [sbatch options...]: submits as the test user, sets JOB to the job id
submit() {
  local case=$1 body=$2
  shift 2
  JOB=$(as_user sbatch --parsable --partition="$PARTITION" --job-name="hpcpipe-capture-$case" \
    --comment="$TAG" --output=/dev/null --chdir=/tmp "$@" "$(script_file "$case" "$body")")
  JOB=${JOB%%;*}
  IDS[$case]=$JOB
  SUBMITTED+=("$JOB")
  log "submitted $case as job $JOB"
}

# squeue -j with one id exits 1 once the job is gone: repeat the id to keep it a list.
states_of() { squeue -h -t all -r -o '%T|%r' -j "$1,$1" 2>/dev/null || true; }

# wait_until ID EXTENDED-REGEX [SECONDS]: until every row of `%T|%r` matches.
wait_until() {
  local id=$1 pattern=$2 deadline=$((SECONDS + ${3:-30})) rows
  while ((SECONDS < deadline)); do
    rows=$(states_of "$id")
    if [[ -n "$rows" ]] && ! grep -qvE "^($pattern)\$" <<<"$rows"; then return 0; fi
    sleep 0.2
  done
  log "job $id did not reach /$pattern/ (last: $(tr '\n' ' ' <<<"${rows:-none}"))"
  return 1
}
FINAL='(COMPLETED|FAILED|CANCELLED|TIMEOUT|DEADLINE|OUT_OF_MEMORY|NODE_FAIL|BOOT_FAIL|PREEMPTED)\|.*'

SQUEUE=(squeue --me -h -t all -r -o "$SQUEUE_FORMAT" -j)
join_ids() { local IFS=,; printf '%s' "$*"; }

# catch_completing ID NAME NOTE: captures squeue the first time the job shows COMPLETING (it lasts ~KillWait).
catch_completing() {
  local id=$1 deadline=$((SECONDS + 120)) rows
  while ((SECONDS < deadline)); do
    rows=$(states_of "$id")
    if grep -q '^COMPLETING|' <<<"$rows"; then
      capture "$2" "$USER_NAME" "$3" -- "${SQUEUE[@]}" "$id"
      return 0
    fi
    if grep -qE "^$FINAL\$" <<<"$rows"; then break; fi
    sleep 0.2
  done
  log "missed the COMPLETING phase of job $id"
  return 1
}

# ---- a job that hits its time limit: started first (it needs ~65 s), watched in the background
# It ignores SIGTERM like a busy program, so it is COMPLETING/TimeLimit for KillWait, then SIGKILLed.
submit timeout "trap '' TERM; for i in \$(seq 1 300); do sleep 1; done" --time=0:01
timeout_id=$JOB
catch_completing "$timeout_id" squeue-timeout-completing "--time=0:01 job being killed at its limit (COMPLETING, reason TimeLimit)" &
timeout_watcher=$!

# ---- sbatch itself ---------------------------------------------------------------
capture sbatch-parsable "$USER_NAME" "sbatch --parsable prints the job id and a newline" -- \
  sbatch --parsable --partition="$PARTITION" --job-name=hpcpipe-capture-sbatch --comment="$TAG" \
  --output=/dev/null --chdir=/tmp "$(script_file sbatch-true 'true')"
IDS[sbatch]=$(jq -r '.stdout | rtrimstr("\n")' "$OUT/sbatch-parsable.json")
SUBMITTED+=("${IDS[sbatch]}")
capture sbatch-bad-partition "$USER_NAME" "sbatch to a partition that does not exist" -- \
  sbatch --parsable --partition=no-such-partition --output=/dev/null --chdir=/tmp "$(script_file sbatch-bad 'true')"
capture sbatch-array-too-large "$USER_NAME" "sbatch --array index above MaxArraySize-1" -- \
  sbatch --parsable --partition="$PARTITION" --array=0-5000 --output=/dev/null --chdir=/tmp "$(script_file sbatch-big 'true')"

# ---- success, failure, an array of 4, dependencies on a failed job ----------------
submit ok 'true'
ok_id=$JOB
submit fail 'exit 3'
fail_id=$JOB
submit array4 'sleep 1' --array=0-3
array4_id=$JOB
wait_until "$fail_id" "$FINAL"
submit deppending 'true' --dependency="afterok:$fail_id"
deppending_id=$JOB
submit depkill 'true' --dependency="afterok:$fail_id" --kill-on-invalid-dep=yes
depkill_id=$JOB
wait_until "$ok_id" "$FINAL"
wait_until "$array4_id" "$FINAL"
wait_until "$depkill_id" "$FINAL"
wait_until "$deppending_id" 'PENDING\|DependencyNeverSatisfied'
capture squeue-pending-dependent "$USER_NAME" "afterok on a failed job without --kill-on-invalid-dep: PENDING DependencyNeverSatisfied" -- \
  "${SQUEUE[@]}" "$deppending_id"
capture scontrol-pending-dependent "$USER_NAME" "scontrol -o of the job pending forever on a failed dependency" -- \
  scontrol show job -o "$deppending_id"
capture scontrol-finished "$USER_NAME" "scontrol -o of a job that exited 3" -- scontrol show job -o "$fail_id"
capture scontrol-array "$USER_NAME" "scontrol -o of a finished array of 4: one line per task" -- scontrol show job -o "$array4_id"

# ---- a throttled array, caught while tasks are pending as a range -----------------
submit throttled 'sleep 5' --array=0-9%2
throttled_id=$JOB
wait_until "$throttled_id" '(RUNNING|PENDING)\|.*' 10
sleep 1
capture squeue-throttled-array "$USER_NAME" "--array=0-9%2 while running: squeue -r expands pending tasks one per line" -- \
  "${SQUEUE[@]}" "$throttled_id"
capture squeue-throttled-array-unexpanded "$USER_NAME" "the same without -r: pending tasks as one range 'N_[2-9%2]'" -- \
  squeue --me -h -t all -o "$SQUEUE_FORMAT" -j "$throttled_id"
# sacct lags slurmctld (seen: no rows at all right after squeue showed the array): wait for the range.
for _ in $(seq 1 50); do
  sacct -X -n -P -o JobID -j "$throttled_id" 2>/dev/null | grep -qF '[' && break
  sleep 0.2
done
capture sacct-throttled-array "$USER_NAME" "sacct shows the pending tasks as a range" -- \
  sacct -X -n -P -o "$SACCT_FIELDS" -j "$throttled_id"
capture scontrol-throttled-array "$USER_NAME" "scontrol -o of a throttled array with pending tasks" -- \
  scontrol show job -o "$throttled_id"
capture scancel-array "$USER_NAME" "scancel of an array with running and pending tasks" -- scancel "$throttled_id"
wait_until "$throttled_id" "$FINAL"
capture squeue-cancelled-array "$USER_NAME" "squeue after cancelling a throttled array" -- "${SQUEUE[@]}" "$throttled_id"

# ---- RUNNING, then scancel by the user --------------------------------------------
submit running 'sleep 120'
running_id=$JOB
wait_until "$running_id" 'RUNNING\|.*'
capture squeue-running "$USER_NAME" "a plain job while RUNNING" -- "${SQUEUE[@]}" "$running_id"
capture scancel-many "$USER_NAME" "one scancel for a running job, a finished job and an unknown id" -- \
  scancel "$running_id" "$ok_id" 4000000
wait_until "$running_id" "$FINAL"

# ---- scancel of another user's job ---------------------------------------------------
root_job=$(sbatch --parsable --partition="$PARTITION" --hold --job-name=hpcpipe-capture-rootheld --output=/dev/null \
  --chdir=/tmp --wrap=true)
root_job=${root_job%%;*}
SUBMITTED+=("$root_job")
capture scancel-permission-denied "$USER_NAME" "the test user cancels a job root submitted" -- scancel "$root_job"
scancel "$root_job"

# ---- COMPLETING: a job that ignores SIGTERM is killed after KillWait ---------------
submit completing "trap '' TERM; for i in \$(seq 1 120); do sleep 1; done"
completing_id=$JOB
wait_until "$completing_id" 'RUNNING\|.*'
as_user scancel "$completing_id"
wait_until "$completing_id" 'COMPLETING\|.*' 5
capture squeue-completing "$USER_NAME" "a cancelled job that traps TERM, between scancel and KillWait" -- \
  "${SQUEUE[@]}" "$completing_id"
capture sacct-completing "$USER_NAME" "sacct of the same job while squeue says COMPLETING" -- \
  sacct -X -n -P -o "$SACCT_FIELDS" -j "$completing_id"

# ---- SUSPENDED and REQUEUED (admin operations, as root) ---------------------------
submit suspended 'sleep 120'
suspended_id=$JOB
wait_until "$suspended_id" 'RUNNING\|.*'
scontrol suspend "$suspended_id"
wait_until "$suspended_id" 'SUSPENDED\|.*' 5
capture squeue-suspended "$USER_NAME" "after scontrol suspend (root)" -- "${SQUEUE[@]}" "$suspended_id"
capture scontrol-suspended "$USER_NAME" "scontrol -o of a suspended job" -- scontrol show job -o "$suspended_id"
scontrol resume "$suspended_id"
scancel "$suspended_id"

submit requeued 'sleep 120'
requeued_id=$JOB
wait_until "$requeued_id" 'RUNNING\|.*'
scontrol requeue "$requeued_id"
capture squeue-requeued "$USER_NAME" "right after scontrol requeue (root) of a running job" -- "${SQUEUE[@]}" "$requeued_id"
wait_until "$requeued_id" 'PENDING\|.*' 20
for _ in $(seq 1 50); do # until accounting has both the requeued run and the new one
  (($(sacct -D -X -n -P -o JobID -j "$requeued_id" 2>/dev/null | wc -l) >= 2)) && break
  sleep 0.2
done
capture sacct-requeued "$USER_NAME" "sacct -D after a requeue: the earlier run is REQUEUED" -- \
  sacct -D -X -n -P -o "$SACCT_FIELDS" -j "$requeued_id"
scancel "$requeued_id"

# ---- DEADLINE, held --------------------------------------------------------------
submit deadline 'true' --deadline=now+20 --time=10
deadline_id=$JOB
submit held 'true' --hold
held_id=$JOB
wait_until "$deadline_id" "$FINAL" 20
capture squeue-held "$USER_NAME" "sbatch --hold" -- "${SQUEUE[@]}" "$held_id"
as_user scancel "$held_id"

# ---- free text with spaces, '=' and '|' in name, comment and working directory ---
spaced_dir="$WORK/dir with spaces"
mkdir -p "$spaced_dir"
chmod 777 "$spaced_dir"
JOB=$(as_user sbatch --parsable --partition="$PARTITION" --hold --output=/dev/null --chdir="$spaced_dir" \
  --job-name="hpcpipe capture spaced" --comment="$TAG note=has spaces | and a pipe" "$(script_file spaced 'true')")
IDS[spaced]=$JOB
SUBMITTED+=("$JOB")
capture squeue-spaced "$USER_NAME" "a held job whose name, comment and WorkDir contain spaces ('|' and '=' in the comment)" -- \
  "${SQUEUE[@]}" "$JOB"
capture scontrol-spaced "$USER_NAME" "scontrol -o of the same job: values with spaces and '='" -- scontrol show job -o "$JOB"
as_user scancel "$JOB"

# ---- one query for everything: the status fixtures -------------------------------
all_ids=("$ok_id" "$fail_id" "$array4_id" "$deppending_id" "$depkill_id" "$running_id" "$completing_id"
  "$suspended_id" "$requeued_id" "$deadline_id" "$held_id" "$throttled_id")
wait_until "$held_id" "$FINAL"
capture squeue-all "$USER_NAME" "ONE squeue for every job of this capture run" -- "${SQUEUE[@]}" "$(join_ids "${all_ids[@]}")"
sleep 3 # sacct lags squeue by up to a few seconds
capture sacct-all "$USER_NAME" "ONE sacct for every job of this capture run plus an id that never existed" -- \
  sacct -X -n -P -o "$SACCT_FIELDS" -j "$(join_ids "${all_ids[@]}" 4000000)"
capture sacct-with-steps "$USER_NAME" "sacct without -X: the batch step rows" -- \
  sacct -n -P -o "$SACCT_FIELDS" -j "$fail_id,$array4_id"
capture scontrol-all "$USER_NAME" "scontrol show job -o without an id: every job slurmctld holds, one line each" -- \
  scontrol show job -o

# ---- a job squeue has forgotten (finished more than MinJobAge ago) ----------------
purged_id=$(sacct -X -n -P -u "$USER_NAME" -o JobID,JobIDRaw -S now-2days 2>/dev/null | awk -F'|' '$1 == $2 { print $1 }' |
  grep -vxF -f <(squeue -h -t all -a -o %A; echo none) | tail -n 1 || true)
if [[ -n "$purged_id" ]]; then
  IDS[purged]=$purged_id
  capture squeue-invalid-id "$USER_NAME" "squeue -j with ONE id slurmctld no longer holds" -- "${SQUEUE[@]}" "$purged_id"
  capture squeue-some-purged "$USER_NAME" "squeue -j with several ids, one of them purged: rows for the others, exit 0" -- \
    "${SQUEUE[@]}" "$ok_id,$purged_id,$fail_id"
  capture sacct-purged "$USER_NAME" "sacct for the purged id" -- sacct -X -n -P -o "$SACCT_FIELDS" -j "$purged_id"
  capture scontrol-invalid-id "$USER_NAME" "scontrol show job -o of a purged id" -- scontrol show job -o "$purged_id"
else
  log "no purged job on this cluster yet (jobs stay MinJobAge=300 s): skipping the purged-id captures"
fi
capture squeue-unknown-ids "$USER_NAME" "squeue -j with two ids slurmctld never had: no rows, exit 0" -- \
  "${SQUEUE[@]}" 4000000,4000001

# ---- sacct when accounting is off or slurmdbd is unreachable (private slurm.conf) --
sed -e 's#^AccountingStorageType=.*#AccountingStorageType=accounting_storage/none#' \
  -e 's#^JobAcctGatherType=.*#JobAcctGatherType=jobacct_gather/none#' /etc/slurm/slurm.conf >"$WORK/slurm-noacct.conf"
sed -e 's#^AccountingStoragePort=.*#AccountingStoragePort=6899#' /etc/slurm/slurm.conf >"$WORK/slurm-deaddbd.conf"
chmod 644 "$WORK"/slurm-*.conf
CAPTURE_ENV="SLURM_CONF=$WORK/slurm-noacct.conf" capture sacct-accounting-disabled "$USER_NAME" \
  "sacct with AccountingStorageType=accounting_storage/none (what up.sh --accounting off configures)" -- \
  sacct -X -n -P -o "$SACCT_FIELDS" -j "$ok_id,$fail_id"
CAPTURE_ENV="SLURM_CONF=$WORK/slurm-deaddbd.conf" capture sacct-dbd-unreachable "$USER_NAME" \
  "sacct when nothing listens on the slurmdbd port" -- \
  sacct -X -n -P -o "$SACCT_FIELDS" -j "$ok_id,$fail_id"

# ---- TIMEOUT: COMPLETING/TimeLimit during KillWait, then TIMEOUT 0:9 ---------------
wait "$timeout_watcher" || log "no COMPLETING capture for the TIMEOUT job this time"
wait_until "$timeout_id" "$FINAL" 90
capture squeue-timeout "$USER_NAME" "--time=0:01 job after KillWait" -- "${SQUEUE[@]}" "$timeout_id"
sleep 2
capture sacct-timeout "$USER_NAME" "sacct of the TIMEOUT job" -- sacct -X -n -P -o "$SACCT_FIELDS" -j "$timeout_id"
capture scontrol-timeout "$USER_NAME" "scontrol -o of the TIMEOUT job" -- scontrol show job -o "$timeout_id"

index='{}'
for case in "${!IDS[@]}"; do index=$(jq -c --arg k "$case" --arg v "${IDS[$case]}" '. + {($k): $v}' <<<"$index"); done
jq -S --arg tag "$TAG" --arg slurm "$SLURM_VERSION" '{comment: $tag, slurmVersion: $slurm, jobs: .}' <<<"$index" >"$OUT/index.json"
log "wrote $OUT/index.json"
