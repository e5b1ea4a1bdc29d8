# shellcheck shell=bash
# hpcpipe job wrapper library, sourced by every job script of a run
# (scripts/lib.sh). The contract it implements: docs/runtime-contract.md.
#
# Needs bash >= 4.2 and coreutils only. Every value reaches these functions
# as an argument or is read from a file with `read -r`; nothing is ever
# `eval`ed or `source`d, except the cluster config's own setup lines
# (hp_setup), which are shell code by definition.

# ---- internal state (never exported) -------------------------------------
_HP_RUN_DIR=""
_HP_JOB_ID=""
_HP_JOB_FAILED=0      # a step (or unit) failed in a way that fails the job
_HP_STOP=0            # the rest of the body must not run
_HP_CRITICAL=0        # a state file is being written: defer signals
_HP_PENDING_SIGNAL=""
_HP_IN_SIGNAL=0
_HP_CHILD=""          # pid (and process group) of the running step command
_HP_HAS_ITEM=0
_HP_ITEM=""
_HP_SLURM_JSON="{}"
_HP_HOST_JSON='""'
declare -A _HP_CTX=() # initial context and map item: the "context" source of needs

# A packed task (hp_map_pack, hp_group_pack): this shell starts one long-lived worker subshell per slot,
# hands each the next item as it finishes one (_hp_pack_run), and writes no state itself.
_HP_PACK_PARENT=0
declare -A _HP_PACK_RUNNING=() # pids of the workers that have not been waited for
_HP_PACK_WORKER=0              # this shell is a worker
_HP_PACK_IDLE=0                # ... waiting for its next item (a signal then records nothing)
_HP_PACK_FAILED=0              # ... and an item it ran failed the task
_HP_PACK_RC=0                  # the status of the item a worker just ran: 0, or 1 when it fails the task
_HP_PACK_FDS=()                # the pipes' descriptors (closed in every command a step starts)
# A packed map task given its map key (hp_map_pack's PACK_NAME) writes ONE state file for all its items,
# states/<base>.jsonl, and one log pair per slot, logs/<base>.s<slot>.out|.err (base: <map key>.items-
# <first>-<last>); docs/runtime-contract.md, "Packed tasks". Items append their state lines to their
# slot's file in states/.pack-<base>/ (a builtin printf: no process, no rename per state); the task
# renames the pack file into place once, when it ends (_hp_pack_finish).
_HP_PACK_BASE=""               # <map key>.items-<first>-<last>; empty: the per-key layout
_HP_PACK_DIR=""                # states/.pack-<base>: the slot files
_HP_PACK_SLOT=""               # in a worker: its slot (the worker runs one item at a time: one writer)
_HP_PACK_KEY_FILES=1           # states/ held a per-key state file of the map when the task began
declare -A _HP_PACK_PREV=()    # key -> its line from before this task (pack file, a killed attempt's slots)
_HP_PACK_PREV_KEYS=()          # those keys, in order of first appearance

# The step that is running (for the signal handler).
_HP_CUR_KEY=""
_HP_CUR_SIG=""
_HP_CUR_START=0
_HP_CUR_TS=""
_HP_CUR_PROVIDES_JSON="[]"
_HP_CUR_LOG=""        # its meta member `,"log":"logs/<base>.s<slot>"` when its logs are a pack slot's

# The unit (group child pipeline or map item) that is open.
_HP_UNIT_KEY=""
_HP_UNIT_SIG=""
_HP_UNIT_ALLOW=0
_HP_UNIT_SKIP=0
_HP_UNIT_START=0
_HP_UNIT_TS=""
_HP_UNIT_FAILED_STEP=""
_HP_UNIT_FAILURE=""
_HP_UNIT_ERROR=""
_HP_UNIT_ALLOWED=()
_HP_UNIT_RAN=0        # a step of the open unit ran (was not skipped as already done)

_HP_STEP_KEY_RE='^[A-Za-z0-9_][A-Za-z0-9_-]*(\.[A-Za-z0-9_][A-Za-z0-9_-]*)*$'
_HP_IDENT_RE='^[A-Za-z_][A-Za-z0-9_]{0,63}$'
_HP_RESERVED=" PATH HOME USER LOGNAME SHELL PWD OLDPWD IFS PS1 PS2 PS4 ENV CDPATH TMPDIR LANG TERM HOSTNAME UID EUID PPID RANDOM SECONDS LINENO OPTIND OPTARG SHELLOPTS BASHOPTS GLOBIGNORE PROMPT_COMMAND step_states "
_HP_PUBLISH_MAX_BYTES=131072

# ---- small utilities -----------------------------------------------------
_hp_log() {
  printf 'hpcpipe: %s\n' "$*" >&2
}

# A fault of the job itself (broken bundle, unreadable run directory): no state can describe it.
_hp_die() {
  _hp_log "error: $*"
  _hp_states_bulk_end
  if ((_HP_PACK_PARENT)); then
    # The items stop (each records its state) and the pack file keeps what they wrote.
    _HP_PACK_PARENT=0
    _hp_pack_stop_items TERM
    _hp_pack_finish
  fi
  exit 1
}

_hp_is_step_key() {
  # Most keys are plain ASCII names and dots: checked with glob classes, without switching the locale
  # (a `local LC_ALL` costs more than the rest of the check); anything else goes to the regex.
  # (No bare `return`: in a trap handler, and the functions it calls, it returns the status from before the trap.)
  if [[ -n $1 && $1 != *[![:alnum:]_.-]* && $1 != *[![:ascii:]]* ]]; then
    [[ $1 != [.-]* && $1 != *. && $1 != *..* && $1 != *.-* ]] && ((${#1} <= 1024)) && return 0
    return 1
  fi
  local LC_ALL=C
  [[ $1 =~ $_HP_STEP_KEY_RE ]] && ((${#1} <= 1024))
}

# A key that may become an environment variable: a shell identifier that shadows nothing. Each name is
# checked once per process (the locale switch and the regex cost 0.1 ms, and a packed task asks per item).
declare -A _HP_CTXKEY_OK=()
_hp_is_context_key() {
  [[ -n $1 ]] || return 1
  if [[ -z ${_HP_CTXKEY_OK[$1]+x} ]]; then
    _HP_CTXKEY_OK[$1]=0
    _hp_check_context_key "$1" && _HP_CTXKEY_OK[$1]=1
  fi
  # A string test, not (( )): a name from a step's published lines must never be evaluated as arithmetic.
  [[ ${_HP_CTXKEY_OK[$1]} == 1 ]] && return 0
  return 1
}
_hp_check_context_key() {
  local LC_ALL=C
  [[ $1 =~ $_HP_IDENT_RE ]] || return 1
  [[ $_HP_RESERVED != *" $1 "* ]] || return 1
  case $1 in SLURM_* | HPCPIPE_* | _HP_* | BASH* | LD_* | SBATCH_* | SSH_* | LC_*) return 1 ;; esac
  return 0
}

# REPLY := microseconds since the epoch.
_hp_now_us() {
  local t=${EPOCHREALTIME:-}
  if [[ -n $t ]]; then
    t=${t//[!0-9]/}
  else
    t=$(date +%s%6N)
  fi
  REPLY=$((10#$t))
}

# REPLY := ISO 8601 UTC time with milliseconds for a microsecond timestamp. The seconds part is kept for
# the next call in the same second (a `local TZ` costs a tzset on entry and on return).
_HP_ISO_S=-1
_HP_ISO_TEXT=""
_hp_iso_time() {
  if (($1 / 1000000 != _HP_ISO_S)); then
    local TZ=UTC0
    _HP_ISO_S=$(($1 / 1000000))
    printf -v _HP_ISO_TEXT '%(%Y-%m-%dT%H:%M:%S)T' "$_HP_ISO_S"
  fi
  printf -v REPLY '%s.%03dZ' "$_HP_ISO_TEXT" "$((($1 / 1000) % 1000))"
}

# REPLY := seconds between two microsecond timestamps, as a JSON number.
_hp_duration() {
  local d=$(($2 - $1))
  ((d >= 0)) || d=0
  printf -v REPLY '%d.%06d' "$((d / 1000000))" "$((d % 1000000))"
}

# REPLY := the argument as a JSON string (bytes >= 0x80 are passed through).
_hp_json_str() {
  # Keys, signatures, times and most items need no escape: no locale switch for them.
  if [[ $1 != *[![:alnum:]\ _.,:/@+=-]* ]]; then
    REPLY="\"$1\""
    return 0
  fi
  local LC_ALL=C
  local s=$1 bs=\\ dq=\" i hex c r
  s=${s//"$bs"/"$bs$bs"}
  s=${s//"$dq"/"$bs$dq"}
  if [[ $s == *[$'\001'-$'\037']* ]]; then
    for ((i = 1; i < 32; i++)); do
      printf -v hex '%02x' "$i"
      printf -v c '%b' "\\x$hex"
      [[ $s == *"$c"* ]] || continue
      case $i in
        8) r="${bs}b" ;;
        9) r="${bs}t" ;;
        10) r="${bs}n" ;;
        12) r="${bs}f" ;;
        13) r="${bs}r" ;;
        *) r="${bs}u00$hex" ;;
      esac
      s=${s//"$c"/"$r"}
    done
  fi
  REPLY="\"$s\""
}

# REPLY := the arguments as a JSON array of strings.
_hp_json_array() {
  local out="" v
  for v in "$@"; do
    _hp_json_str "$v"
    out+="${out:+,}$REPLY"
  done
  REPLY="[$out]"
}

# Writes text to states/<key>.json through a temp file in the same directory (in a bulk, see below); an
# item of a pack appends it as one line to its slot file instead (no process).
_hp_write_state() {
  local key=$1 text=$2
  if [[ -n $_HP_PACK_SLOT ]]; then
    printf '%s\n' "$text" >>"$_HP_PACK_DIR/s$_HP_PACK_SLOT.jsonl" && return 0
    _hp_log "error: cannot append to $_HP_PACK_DIR/s$_HP_PACK_SLOT.jsonl; writing states/$key.json"
  fi
  local final="$_HP_RUN_DIR/states/$key.json"
  local tmp="$_HP_RUN_DIR/states/.$key.json.tmp.$$"
  if [[ -n $_HP_STATE_BULK ]]; then
    printf '%s\n' "$text" >"$_HP_STATE_BULK/$key.json" && return 0
    rm -f -- "$_HP_STATE_BULK/$key.json"
  fi
  if ! { printf '%s\n' "$text" >"$tmp" && mv -f -- "$tmp" "$final"; }; then
    rm -f -- "$tmp"
    _hp_log "error: cannot write $final"
  fi
}

# The states of many items at once (a batch step's items, a batch map's units): between
# _hp_states_bulk_begin and _hp_states_bulk_end, _hp_write_state writes states/<key>.json into
# states/.hpcpipe-bulk-<pid>/ (a directory the readers of states/*.json never see), and the end renames them
# all into states/ with one `mv` instead of one process per item; each rename stays atomic. A signal or
# _hp_die ends the bulk first, so no written state is lost.
_HP_STATE_BULK=""
_hp_states_bulk_begin() {
  local dir="$_HP_RUN_DIR/states/.hpcpipe-bulk-$BASHPID"
  [[ -z $_HP_STATE_BULK ]] || return 0
  # Without the directory (left by a killed process of the same pid), states are written one by one.
  mkdir -- "$dir" 2>/dev/null && _HP_STATE_BULK=$dir
  return 0
}
_hp_states_bulk_end() {
  local dir=$_HP_STATE_BULK f k
  [[ -n $dir ]] || return 0
  _HP_STATE_BULK=""
  local -a files=()
  for f in "$dir"/*.json; do [[ -f $f ]] && files+=("$f"); done
  # At most 500 names per mv (keys are up to 1,024 characters; the argument list is bounded).
  for ((k = 0; k < ${#files[@]}; k += 500)); do
    mv -f -t "$_HP_RUN_DIR/states" -- "${files[@]:k:500}" 2>/dev/null && continue
    for f in "${files[@]:k:500}"; do
      [[ -e $f ]] || continue
      mv -f -- "$f" "$_HP_RUN_DIR/states/" || _hp_log "error: cannot write $_HP_RUN_DIR/states/${f##*/}"
    done
  done
  rmdir -- "$dir" 2>/dev/null || rm -rf -- "$dir"
}

# REPLY := a whole state file. Arguments: key signature start_us ts success
# failure-json error-json provides-json outputs-json meta-json exit-code-json.
_hp_state_json() {
  local key=$1 sig=$2 start=$3 ts=$4 success=$5 failure=$6 error=$7 provides=$8 outputs=$9 meta=${10} exit_code=${11}
  local dur key_json sig_json
  _hp_now_us
  _hp_duration "$start" "$REPLY"
  dur=$REPLY
  _hp_json_str "$key"
  key_json=$REPLY
  _hp_json_str "$sig"
  sig_json=$REPLY
  REPLY="{\"success\":$success,\"timestamp\":\"$ts\",\"duration_s\":$dur,\"provides\":$provides,\"outputs\":$outputs,\"error\":$error,\"meta\":$meta,\"signature\":$sig_json,\"failure\":$failure,\"key\":$key_json,\"slurm\":$_HP_SLURM_JSON,\"host\":$_HP_HOST_JSON,\"exit_code\":$exit_code,\"attempt\":$HPCPIPE_ATTEMPT}"
}

# REPLY := the meta object: the given "name":value members plus the map item.
_hp_meta_json() {
  local members=$1
  if ((_HP_HAS_ITEM)); then
    _hp_json_str "$_HP_ITEM"
    members+="${members:+,}\"item\":$REPLY"
  fi
  REPLY="{$members}"
}

# Leaves the critical section and handles a signal that arrived inside it.
_hp_leave_critical() {
  _HP_CRITICAL=0
  if [[ -n $_HP_PENDING_SIGNAL ]] && ((!_HP_IN_SIGNAL)); then
    _hp_handle_signal "$_HP_PENDING_SIGNAL"
  fi
}

# ---- signals -------------------------------------------------------------
_hp_install_traps() {
  trap '_hp_signal TERM' TERM
  trap '_hp_signal USR1' USR1
  trap '_hp_signal INT' INT
  trap '_hp_signal HUP' HUP
}

_hp_signal() {
  if ((_HP_CRITICAL)); then
    _HP_PENDING_SIGNAL=$1
    return 0
  fi
  _hp_handle_signal "$1"
}

# A cancel signals every process of the job, the command's too, in no set order: the command can die of the
# signal before this shell's trap runs, and its exit status (128 + a signal the traps take) would be
# recorded as a failure of the command. Such a status waits up to half a second for the shell's own signal,
# and one that comes is handled while the step is still the running one. A failure path only: it costs
# nothing to a command that succeeds or fails with its own status.
_hp_await_own_signal() {
  case $_HP_S_RC in 129 | 130 | 138 | 143) ;; *) return 0 ;; esac
  local i
  for ((i = 0; i < 5; i++)); do
    [[ -n $_HP_PENDING_SIGNAL ]] && break
    sleep 0.1
  done
  [[ -z $_HP_PENDING_SIGNAL ]] || _hp_leave_critical
}

# Stops the running command, records the running step (and open unit) as failed, exits 128+n.
_hp_handle_signal() {
  local sig=$1 num reason error
  _HP_IN_SIGNAL=1
  trap '' TERM USR1 INT HUP
  _hp_states_bulk_end
  case $sig in
    # TERM alone is a cancel, a preemption or a time limit without warning; the collector names which from SLURM.
    TERM) num=15 reason=TERMINATED ;;
    USR1) num=10 reason=TIMEOUT ;;
    INT) num=2 reason=SIGNAL ;;
    *) num=1 reason=SIGNAL ;;
  esac
  ((_HP_PACK_PARENT)) && _hp_pack_signal "$sig" "$num"
  if [[ -n $_HP_CHILD ]]; then
    kill -TERM -- "-$_HP_CHILD" 2>/dev/null || kill -TERM "$_HP_CHILD" 2>/dev/null
  fi
  error="killed by SIG$sig"
  [[ $reason == TIMEOUT ]] && error+=" (time limit)"
  [[ $reason == TERMINATED ]] && error+=" (cancelled, preempted or out of time)"
  _hp_json_str "$error"
  local error_json=$REPLY
  ((_HP_BATCH)) && _hp_batch_signal "$error" "$reason"
  if [[ -n $_HP_CUR_KEY ]]; then
    _hp_meta_json "\"exit_code\":null,\"reason\":\"$reason\"$_HP_CUR_LOG"
    _hp_state_json "$_HP_CUR_KEY" "$_HP_CUR_SIG" "$_HP_CUR_START" "$_HP_CUR_TS" false '"STEP_FAILED"' "$error_json" \
      "$_HP_CUR_PROVIDES_JSON" '{}' "$REPLY" null
    _hp_write_state "$_HP_CUR_KEY" "$REPLY"
    _hp_log "step $_HP_CUR_KEY: $error"
    if [[ -n $_HP_UNIT_KEY && -z $_HP_UNIT_FAILED_STEP ]]; then
      _HP_UNIT_FAILED_STEP=$_HP_CUR_KEY
      _HP_UNIT_FAILURE=STEP_FAILED
      _HP_UNIT_ERROR=$error
    fi
  fi
  if [[ -n $_HP_UNIT_KEY ]] && ((!_HP_UNIT_SKIP)); then
    local members="\"reason\":\"$reason\""
    if [[ -n $_HP_UNIT_FAILED_STEP ]]; then
      _hp_json_str "$_HP_UNIT_FAILED_STEP: $_HP_UNIT_ERROR"
      error_json=$REPLY
      _hp_json_str "$_HP_UNIT_FAILED_STEP"
      members+=",\"failed_step\":$REPLY"
    else
      _hp_json_str "$_HP_UNIT_KEY: $error"
      error_json=$REPLY
    fi
    _hp_meta_json "$members"
    _hp_state_json "$_HP_UNIT_KEY" "$_HP_UNIT_SIG" "$_HP_UNIT_START" "$_HP_UNIT_TS" false "\"${_HP_UNIT_FAILURE:-STEP_FAILED}\"" \
      "$error_json" '[]' '{}' "$REPLY" null
    _hp_write_state "$_HP_UNIT_KEY" "$REPLY"
  fi
  _hp_log "job ${_HP_JOB_ID}: stopped by SIG$sig"
  # A unit allowed to fail (continue_on_error child, map with continue_on_item_error) must not fail the
  # array task, or the array's afterok dependents would be cancelled.
  # A worker says whether an item it ran before failed the task; one waiting for its next item ran none now.
  if [[ -n $_HP_UNIT_KEY ]] && ((_HP_UNIT_ALLOW)) && [[ ${_HP_UNIT_FAILURE:-STEP_FAILED} != MISSING_REQUIREMENT ]]; then
    exit "$_HP_PACK_FAILED"
  fi
  ((_HP_PACK_IDLE)) && exit "$_HP_PACK_FAILED"
  exit $((128 + num))
}

# ---- job ------------------------------------------------------------------
_hp_load_context() {
  local file="$_HP_RUN_DIR/context.env0" rec k
  if [[ ! -f $file ]]; then
    _hp_log "warning: $file is missing; starting with an empty context"
    return 0
  fi
  while IFS= read -r -d '' rec || [[ -n $rec ]]; do
    k=${rec%%=*}
    if [[ $rec != *=* ]] || ! _hp_is_context_key "$k"; then
      _hp_log "warning: ignoring a context record whose key is not a usable variable name"
      continue
    fi
    _HP_CTX[$k]=${rec#*=}
    # -g: a key named like a local of this function (k, rec, file) sets the global, not the local.
    declare -gx -- "$k=${rec#*=}"
  done <"$file"
}

# hp_job_begin JOB_ID OFFSET IS_ARRAY [TASK_MAP]: traps, run directory, task index, context.
# TASK_MAP ("3,17,42"): a remapped rerun, array task id i runs logical task i of the list. A retry
# (scripts/retry.sh) gives its own in HPCPIPE_TASK_MAP, and its attempts so far in HPCPIPE_ATTEMPT_BASE.
hp_job_begin() {
  _HP_JOB_ID=$1
  local offset=$2 is_array=$3 map=${HPCPIPE_TASK_MAP:-${4:-}} id
  local -a tasks
  _hp_install_traps
  [[ -n ${HPCPIPE_RUN_DIR:-} ]] || _hp_die "HPCPIPE_RUN_DIR is not set"
  _HP_RUN_DIR=$HPCPIPE_RUN_DIR
  mkdir -p -- "$_HP_RUN_DIR/states" "$_HP_RUN_DIR/logs" "$_HP_RUN_DIR/ctx" "$_HP_RUN_DIR/out" "$_HP_RUN_DIR/work" ||
    _hp_die "cannot create the run directories under $_HP_RUN_DIR"
  if [[ $is_array == 1 ]]; then
    id=${SLURM_ARRAY_TASK_ID:-}
    [[ $id =~ ^[0-9]{1,9}$ ]] || _hp_die "job $_HP_JOB_ID is an array job but SLURM_ARRAY_TASK_ID is '${id}'"
    if [[ -n $map ]]; then
      IFS=, read -ra tasks <<<"$map"
      [[ ${tasks[10#$id]:-} =~ ^[0-9]{1,9}$ ]] || _hp_die "job $_HP_JOB_ID: array task id $id has no task in its map"
      HPCPIPE_TASK=$((10#${tasks[10#$id]}))
    else
      HPCPIPE_TASK=$((10#$id + offset))
    fi
  else
    HPCPIPE_TASK=0
  fi
  if [[ ${HPCPIPE_ATTEMPT:-} =~ ^[1-9][0-9]{0,5}$ ]]; then
    :
  else
    HPCPIPE_ATTEMPT=1
    [[ ${HPCPIPE_ATTEMPT_BASE:-} =~ ^[0-9]{1,5}$ ]] && HPCPIPE_ATTEMPT=$((10#$HPCPIPE_ATTEMPT_BASE + 1))
    [[ ${SLURM_RESTART_COUNT:-} =~ ^[0-9]{1,5}$ ]] && HPCPIPE_ATTEMPT=$((HPCPIPE_ATTEMPT + 10#$SLURM_RESTART_COUNT))
  fi
  HPCPIPE_OUT_DIR="$_HP_RUN_DIR/out"
  export HPCPIPE_RUN_DIR HPCPIPE_TASK HPCPIPE_ATTEMPT HPCPIPE_OUT_DIR

  local slurm="" name var
  for name in job_id:SLURM_JOB_ID array_job_id:SLURM_ARRAY_JOB_ID array_task_id:SLURM_ARRAY_TASK_ID; do
    var=${name#*:}
    if [[ -n ${!var:-} ]]; then
      _hp_json_str "${!var:0:32}"
      slurm+="\"${name%%:*}\":$REPLY,"
    fi
  done
  _HP_SLURM_JSON="{$slurm\"task\":$HPCPIPE_TASK}"
  _hp_json_str "${HOSTNAME:-unknown}"
  _HP_HOST_JSON=$REPLY
  [[ ${#HOSTNAME} -le 256 ]] || { _hp_json_str "${HOSTNAME:0:256}" && _HP_HOST_JSON=$REPLY; }

  _hp_load_context
  _hp_log "job $_HP_JOB_ID: task $HPCPIPE_TASK on ${HOSTNAME:-unknown}, attempt $HPCPIPE_ATTEMPT"
}

# hp_modules NAME...: `module load` from the cluster config; the job stops when it fails.
hp_modules() {
  if ! declare -F module >/dev/null && ! type -P module >/dev/null; then
    _hp_die "the cluster config loads modules, but the 'module' command is not available in the job"
  fi
  module load "$@" || _hp_die "module load failed: $*"
  set +o errexit +o nounset
  _hp_install_traps
}

# hp_setup LINE: one setup line of the cluster config (trusted shell code); the job stops when it fails.
hp_setup() {
  # shellcheck disable=SC2294 # the line is one string of shell code by design
  eval "$1" || _hp_die "setup line failed (status $?): $1"
  # Setup code must not change how the wrapper itself behaves.
  set +o errexit +o nounset
  _hp_install_traps
}

# hp_map_item ITEMS_FILE ITEM_KEY: exports line HPCPIPE_TASK+1 of the items file.
hp_map_item() {
  local file="$_HP_RUN_DIR/$1" key=$2
  local -a line=()
  _hp_is_context_key "$key" || _hp_die "map item key '$key' is not a usable variable name"
  [[ -r $file ]] || _hp_die "cannot read the items file $file"
  mapfile -t -s "$HPCPIPE_TASK" -n 1 line <"$file"
  ((${#line[@]} == 1)) || _hp_die "no item for task $HPCPIPE_TASK in $file"
  _HP_ITEM=${line[0]}
  _HP_HAS_ITEM=1
  _HP_CTX[$key]=$_HP_ITEM
  HPCPIPE_ITEM=$_HP_ITEM
  export HPCPIPE_ITEM
  export -- "$key=$_HP_ITEM"
}

# ---- packed tasks (maps and parallel groups) ------------------------------
# hp_map_pack ITEMS_FILE ITEM_KEY PER_TASK ITEM_CPUS BODY [PACK_NAME]: a packed map task. Runs BODY (a
# function of the job script: the item's hp_unit_begin, hp_step..., hp_unit_end) once for each item of
# this task, lines HPCPIPE_TASK*PER_TASK+1 .. +PER_TASK of the items file, each in a worker (_hp_pack_run) with
# HPCPIPE_TASK = the item index and the item exported under ITEM_KEY and as HPCPIPE_ITEM; at most
# max(1, SLURM_CPUS_PER_TASK / ITEM_CPUS) items at once. With PACK_NAME (the map's key), the items'
# states go to ONE pack file and their logs to one pair per slot (see _HP_PACK_BASE); without (job
# scripts of older templates), each item writes its own states/<key>.json and logs/<key>.out|.err. An
# item fails the task as an unpacked task would fail (see hp_job_end). A signal is passed on to the
# running items, which record their states; items not started yet write nothing.
# (No locals here nor in hp_group_pack and _hp_pack_run: they stay visible to every item's commands
# and would replace the context values of their names; see _HP_S_*.)
hp_map_pack() {
  _hp_is_context_key "$2" || _hp_die "map item key '$2' is not a usable variable name"
  _hp_pack_check hp_map_pack "$3" "$4" "$5"
  (($# < 6)) || _hp_is_step_key "$6" || _hp_die "hp_map_pack: pack name '$6' is not a valid step key"
  [[ -r $_HP_RUN_DIR/$1 ]] || _hp_die "cannot read the items file $_HP_RUN_DIR/$1"
  _HP_PACK_ITEMS=()
  mapfile -t -s "$((HPCPIPE_TASK * $3))" -n "$3" _HP_PACK_ITEMS <"$_HP_RUN_DIR/$1"
  ((${#_HP_PACK_ITEMS[@]} > 0)) || _hp_die "no items for task $HPCPIPE_TASK in $_HP_RUN_DIR/$1"
  (($# < 6)) || _hp_pack_begin "$6.items-$((HPCPIPE_TASK * $3))-$((HPCPIPE_TASK * $3 + ${#_HP_PACK_ITEMS[@]} - 1))"
  _hp_cache_slices "$((HPCPIPE_TASK * $3))" "${#_HP_PACK_ITEMS[@]}"
  _hp_pack_run items "$((HPCPIPE_TASK * $3))" "${#_HP_PACK_ITEMS[@]}" "$4" "$5" "$2"
}

# hp_group_pack CHILDREN PER_TASK CHILD_CPUS BODY: a packed parallel group's task runs the children
# TASK*PER_TASK .. (TASK+1)*PER_TASK-1 (fewer in the last task), each in a worker whose
# HPCPIPE_TASK is the child's index (BODY selects the child's steps by it), at most
# floor(SLURM_CPUS_PER_TASK / CHILD_CPUS) at once; this shell writes no state itself.
hp_group_pack() {
  [[ $1 =~ ^[1-9][0-9]{0,8}$ ]] || _hp_die "hp_group_pack: bad number of children '$1'"
  _hp_pack_check hp_group_pack "$2" "$3" "$4"
  ((HPCPIPE_TASK * $2 < $1)) || _hp_die "no children for task $HPCPIPE_TASK (the group has $1)"
  if (($1 - HPCPIPE_TASK * $2 <= $2)); then
    _hp_pack_run children "$((HPCPIPE_TASK * $2))" "$(($1 - HPCPIPE_TASK * $2))" "$3" "$4" ""
  else
    _hp_pack_run children "$((HPCPIPE_TASK * $2))" "$2" "$3" "$4" ""
  fi
}

_hp_pack_check() {
  [[ $2 =~ ^[1-9][0-9]{0,8}$ && $3 =~ ^[1-9][0-9]{0,5}$ ]] || _hp_die "$1: bad items per task '$2' or item cpus '$3'"
  declare -F -- "$4" >/dev/null || _hp_die "$1: the job script defines no function '$4'"
}

# _hp_pack_run NOUN FIRST N ITEM_CPUS BODY ITEM_KEY: runs items FIRST .. FIRST+N-1 of the task, at most
# S = floor(cpus / ITEM_CPUS) at once, and waits for them all. S workers (subshells forked once per task,
# not once per item: a fork of this shell costs about 0.7 ms) each run one item at a time in slot 0 ..
# S-1: this shell hands a worker the next item's index through the worker's pipe as soon as the worker
# writes on the shared pipe back that it finished one ("SLOT STATUS"), so the items are spread as they
# end, whatever their durations. One slot (or pipes that cannot be made) needs no pipe: one worker runs
# the items in order. With an ITEM_KEY (a map), item FIRST+i gets _HP_PACK_ITEMS[i] as its value.
_HP_PACK_ITEMS=()
_HP_PACK_SLOTS=1
_HP_PACK_Q=()      # each worker's pipe: this shell writes, the worker reads
_HP_PACK_DONE=""   # the pipe back (this shell reads; it closes its write end once the workers started)
_HP_PACK_FD=""
_HP_PACK_NEXT=0
_HP_PACK_BUSY=0
_HP_PACK_MSG=()
_HP_PACK_S=0
_hp_pack_run() {
  _HP_PACK_SLOTS=${SLURM_CPUS_PER_TASK:-1}
  [[ $_HP_PACK_SLOTS =~ ^[1-9][0-9]{0,5}$ ]] || _HP_PACK_SLOTS=1
  _HP_PACK_SLOTS=$((_HP_PACK_SLOTS / $4))
  ((_HP_PACK_SLOTS >= 1)) || _HP_PACK_SLOTS=1
  _hp_log "job $_HP_JOB_ID: task $HPCPIPE_TASK runs $1 $2-$(($2 + $3 - 1)), at most $_HP_PACK_SLOTS at once"
  ((_HP_PACK_SLOTS <= $3)) || _HP_PACK_SLOTS=$3
  _HP_PACK_PARENT=1
  _HP_PACK_RUNNING=()
  # A signal that arrives while the workers start is handled once their pids are recorded (and so passed on).
  _HP_CRITICAL=1
  if ((_HP_PACK_SLOTS > 1)) && _hp_pack_pipes; then
    for ((_HP_PACK_NEXT = 0; _HP_PACK_NEXT < _HP_PACK_SLOTS; _HP_PACK_NEXT++)); do
      _hp_pack_worker "$_HP_PACK_NEXT" "$2" "$3" "$5" "$6" &
      _HP_PACK_RUNNING[$!]=1
    done
    # The workers hold the write end of the pipe back: when none is left, a read of it ends.
    _HP_PACK_FD=$_HP_PACK_DONE_W
    exec {_HP_PACK_FD}>&-
    _hp_leave_critical
    _HP_PACK_NEXT=0
    _HP_PACK_BUSY=0
    for ((_HP_PACK_S = 0; _HP_PACK_S < _HP_PACK_SLOTS; _HP_PACK_S++)); do _hp_pack_give "$_HP_PACK_S" "$3"; done
    while ((_HP_PACK_BUSY > 0)); do
      # A read that times out now and then lets a trap run on a bash that resumes a read a signal interrupted
      # (bash < 4.4): a signal waits for a second at most, not for the next item to end.
      read -r -t 1 -u "$_HP_PACK_DONE" -a _HP_PACK_MSG
      _HP_PACK_S=$?
      ((_HP_PACK_S > 128)) && continue
      if ((_HP_PACK_S != 0)); then
        # Every worker is gone without saying so (killed): its item failed the task.
        _hp_log "error: job $_HP_JOB_ID: task $HPCPIPE_TASK lost its workers"
        _HP_JOB_FAILED=1
        break
      fi
      # Globs, not regexes (bash compiles a regex on every test): per item, in the task's shell and in the worker.
      if [[ -z ${_HP_PACK_MSG[0]:-} || ${_HP_PACK_MSG[0]} == *[!0123456789]* || ${#_HP_PACK_MSG[0]} -gt 6 ]] || ((10#${_HP_PACK_MSG[0]} >= _HP_PACK_SLOTS)); then continue; fi
      _HP_PACK_BUSY=$((_HP_PACK_BUSY - 1))
      case ${_HP_PACK_MSG[1]:-} in
        0) _hp_pack_give "${_HP_PACK_MSG[0]}" "$3" ;;
        1)
          _HP_JOB_FAILED=1
          _hp_pack_give "${_HP_PACK_MSG[0]}" "$3"
          ;;
        # The worker ended on its own (_hp_die in an item): it takes no more items.
        *) _HP_JOB_FAILED=1 ;;
      esac
    done
  else
    ((_HP_PACK_SLOTS == 1)) || _hp_log "warning: job $_HP_JOB_ID: cannot make the pipes of $_HP_PACK_SLOTS workers (/dev/fd); the items run one at a time"
    _HP_PACK_SLOTS=1
    _hp_pack_worker 0 "$2" "$3" "$5" "$6" &
    _HP_PACK_RUNNING[$!]=1
    _hp_leave_critical
  fi
  # Each worker's status also says whether one of its items failed the task.
  _hp_pack_wait_workers || _HP_JOB_FAILED=1
  _hp_pack_close_pipes
  # Still the pack's parent: a signal that arrives now goes through _hp_pack_signal, which writes the file.
  _hp_pack_finish
  _HP_PACK_PARENT=0
}

# _hp_pack_pipes: the pipe back (_HP_PACK_DONE, _HP_PACK_DONE_W) and one pipe per slot (_HP_PACK_Q, the
# write ends; _HP_PACK_QR, the read ends), with no process and no file: a pipe (`<(:)`) opened again
# through /dev/fd once for reading and once for writing (Linux), so each end can be closed on its own.
# Status 1 when it cannot (the items then run in one slot).
_HP_PACK_DONE_W=""
_HP_PACK_QR=()
_hp_pack_pipes() {
  _HP_PACK_FDS=()
  _HP_PACK_Q=()
  _HP_PACK_QR=()
  _hp_pack_pipe || return 1
  _HP_PACK_DONE=$REPLY
  _HP_PACK_DONE_W=${REPLY#* }
  _HP_PACK_DONE=${_HP_PACK_DONE% *}
  for ((_HP_PACK_NEXT = 0; _HP_PACK_NEXT < _HP_PACK_SLOTS; _HP_PACK_NEXT++)); do
    if ! _hp_pack_pipe; then
      _hp_pack_close_pipes
      return 1
    fi
    _HP_PACK_QR+=("${REPLY% *}")
    _HP_PACK_Q+=("${REPLY#* }")
  done
}

# REPLY := "READ_FD WRITE_FD" of a new pipe; status 1 when it cannot be made.
_hp_pack_pipe() {
  local rw="" r="" w=""
  { exec {rw}<> <(:); } 2>/dev/null || return 1
  if ! { exec {r}<"/dev/fd/$rw" {w}>"/dev/fd/$rw"; } 2>/dev/null; then
    exec {rw}>&-
    [[ -n $r ]] && exec {r}>&-
    return 1
  fi
  exec {rw}>&-
  _HP_PACK_FDS+=("$r" "$w")
  REPLY="$r $w"
}

_hp_pack_close_pipes() {
  for _HP_PACK_FD in "${_HP_PACK_FDS[@]}"; do exec {_HP_PACK_FD}>&-; done
  _HP_PACK_FDS=()
  _HP_PACK_Q=()
  _HP_PACK_QR=()
}

# _hp_pack_give SLOT N: hands the worker of SLOT the next of the N items, or, when none is left, closes
# its pipe (the worker ends).
_hp_pack_give() {
  _HP_PACK_FD=${_HP_PACK_Q[$1]}
  if ((_HP_PACK_NEXT < $2)); then
    # This shell keeps the read ends open: a write never raises SIGPIPE, even to a worker that died.
    printf '%d\n' "$_HP_PACK_NEXT" >&"$_HP_PACK_FD"
    _HP_PACK_NEXT=$((_HP_PACK_NEXT + 1))
    _HP_PACK_BUSY=$((_HP_PACK_BUSY + 1))
  else
    exec {_HP_PACK_FD}>&-
  fi
}

# Waits for every worker; status 1 when one of them exits non-zero.
_hp_pack_wait_workers() {
  local pid rc failed=0
  for pid in "${!_HP_PACK_RUNNING[@]}"; do
    wait "$pid"
    rc=$?
    ((rc == 0)) || failed=1
  done
  _HP_PACK_RUNNING=()
  return "$failed"
}

# _hp_pack_begin BASE: the pack layout for this task. Loads the lines from before it (the pack file of an
# earlier attempt, then the complete lines a killed attempt left in the slot files, which are newer) into
# _HP_PACK_PREV, the "already done" checks of the items; a killed attempt's lines are saved into the pack
# file at once (so a task killed again loses none), then its slot files are emptied.
_hp_pack_begin() {
  local base=$1 f salvaged=0
  _HP_PACK_BASE=$base
  _HP_PACK_DIR="$_HP_RUN_DIR/states/.pack-$base"
  _HP_PACK_PREV=()
  _HP_PACK_PREV_KEYS=()
  _HP_PACK_KEY_FILES=1
  _hp_pack_key_files || _HP_PACK_KEY_FILES=0
  [[ -f $_HP_RUN_DIR/states/$base.jsonl ]] && _hp_pack_load "$_HP_RUN_DIR/states/$base.jsonl" _hp_pack_prev_add
  if [[ -d $_HP_PACK_DIR ]]; then
    for f in "$_HP_PACK_DIR"/s*.jsonl; do
      [[ -f $f ]] || continue
      _hp_pack_load "$f" _hp_pack_prev_add && salvaged=1
    done
    if ((salvaged)); then
      _hp_log "job $_HP_JOB_ID: kept the states a killed attempt of task $HPCPIPE_TASK left in $_HP_PACK_DIR"
      _hp_pack_write || _hp_die "cannot write $_HP_RUN_DIR/states/$base.jsonl"
    fi
    for f in "$_HP_PACK_DIR"/s*.jsonl; do
      [[ -f $f ]] && : >"$f"
    done
  else
    mkdir -p -- "$_HP_PACK_DIR" || _hp_die "cannot create $_HP_PACK_DIR"
  fi
}

# _hp_pack_load FILE FUNCTION: calls FUNCTION KEY LINE for each complete line of FILE (a last line
# without its newline is torn: skipped) that holds a valid key (the LAST `,"key":"` of the line: the
# outputs and meta objects before it may hold members named "key"). Status 1 when there is none.
_hp_pack_load() {
  local line key found=1
  local -a lines=()
  mapfile lines <"$1" 2>/dev/null || return 1
  for line in "${lines[@]}"; do
    [[ $line == *$'\n' && $line == *',"key":"'* ]] || continue
    line=${line%$'\n'}
    key=${line##*,\"key\":\"}
    key=${key%%\"*}
    _hp_is_step_key "$key" || continue
    "$2" "$key" "$line"
    found=0
  done
  return "$found"
}

_hp_pack_prev_add() {
  [[ -n ${_HP_PACK_PREV[$1]+x} ]] || _HP_PACK_PREV_KEYS+=("$1")
  _HP_PACK_PREV[$1]=$2
}

# This attempt's lines (from the slot files), in the order of their first appearance; the last line of a key wins.
declare -A _HP_PACK_NEW=()
_HP_PACK_NEW_KEYS=()
_hp_pack_new_add() {
  [[ -n ${_HP_PACK_NEW[$1]+x} ]] || _HP_PACK_NEW_KEYS+=("$1")
  _HP_PACK_NEW[$1]=$2
}

# Writes states/<base>.jsonl: the previous lines of the keys not written again, then this attempt's,
# through a temp file and one mv. Status 1 when it cannot.
_hp_pack_write() {
  local final="$_HP_RUN_DIR/states/$_HP_PACK_BASE.jsonl" tmp="$_HP_RUN_DIR/states/.$_HP_PACK_BASE.jsonl.tmp.$$" k
  local -a out=()
  for k in "${_HP_PACK_PREV_KEYS[@]}"; do
    [[ -n ${_HP_PACK_NEW[$k]+x} ]] || out+=("${_HP_PACK_PREV[$k]}")
  done
  for k in "${_HP_PACK_NEW_KEYS[@]}"; do out+=("${_HP_PACK_NEW[$k]}"); done
  ((${#out[@]} > 0)) || return 0
  if ! { printf '%s\n' "${out[@]}" >"$tmp" && mv -f -- "$tmp" "$final"; }; then
    rm -f -- "$tmp"
    return 1
  fi
}

# The task ends (normally, after a signal, or _hp_die): its items' lines go to the pack file, renamed
# into place once; per-key state files of the keys it holds (a step-cache restore, an older layout) are
# removed, in one rm; the slot directory goes. Once per task.
_hp_pack_finish() {
  [[ -n $_HP_PACK_BASE ]] || return 0
  local f k n
  local -a stale=()
  _HP_CRITICAL=1
  # The usual task (no line from before it, no per-key state file of its map): its slot files' complete
  # lines, as they are, make the pack file (no key of one slot is in another; within a file the last line
  # of a key wins).
  if ((${#_HP_PACK_PREV_KEYS[@]} == 0)) && ! _hp_pack_key_files; then
    _hp_pack_concat
    case $? in
      0 | 2) rm -rf -- "$_HP_PACK_DIR" ;;
      *) _hp_log "error: cannot write $_HP_RUN_DIR/states/$_HP_PACK_BASE.jsonl; the states stay in $_HP_PACK_DIR" ;;
    esac
    _HP_PACK_BASE=""
    _hp_leave_critical
    return 0
  fi
  _HP_PACK_NEW=()
  _HP_PACK_NEW_KEYS=()
  for f in "$_HP_PACK_DIR"/s*.jsonl; do
    [[ -f $f ]] && _hp_pack_load "$f" _hp_pack_new_add
  done
  if ((${#_HP_PACK_NEW_KEYS[@]} > 0)); then
    if _hp_pack_write; then
      for k in "${_HP_PACK_PREV_KEYS[@]}" "${_HP_PACK_NEW_KEYS[@]}"; do
        [[ -e $_HP_RUN_DIR/states/$k.json ]] && stale+=("$_HP_RUN_DIR/states/$k.json")
      done
      for ((n = 0; n < ${#stale[@]}; n += 500)); do rm -f -- "${stale[@]:n:500}"; done
      rm -rf -- "$_HP_PACK_DIR"
    else
      # The slot files stay: the next attempt of the task takes their lines as its previous ones.
      _hp_log "error: cannot write $_HP_RUN_DIR/states/$_HP_PACK_BASE.jsonl; the states stay in $_HP_PACK_DIR"
    fi
  else
    rm -rf -- "$_HP_PACK_DIR"
  fi
  _HP_PACK_BASE=""
  _hp_leave_critical
}

# True when states/ holds a per-key state file of the task's map (a step-cache restore, an older layout).
_hp_pack_key_files() {
  local f
  for f in "$_HP_RUN_DIR/states/${_HP_PACK_BASE%.items-*}".*.json; do
    [[ -e $f ]] && return 0
  done
  return 1
}

# Writes states/<base>.jsonl from the complete lines of the slot files (a last line without its newline is
# torn: left out), through a temp file and one mv. Status 0 when written, 2 when there is no line, 1 when it cannot.
_hp_pack_concat() {
  local final="$_HP_RUN_DIR/states/$_HP_PACK_BASE.jsonl" tmp="$_HP_RUN_DIR/states/.$_HP_PACK_BASE.jsonl.tmp.$$" f any=2
  local -a lines=()
  {
    for f in "$_HP_PACK_DIR"/s*.jsonl; do
      [[ -f $f ]] && mapfile lines <"$f" && ((${#lines[@]} > 0)) || continue
      [[ ${lines[${#lines[@]} - 1]} == *$'\n' ]] || unset "lines[${#lines[@]}-1]"
      ((${#lines[@]} > 0)) || continue
      printf '%s' "${lines[@]}" || return 1
      any=0
    done
  } >"$tmp" || {
    rm -f -- "$tmp"
    return 1
  }
  if ((any == 2)); then
    rm -f -- "$tmp"
    return 2
  fi
  mv -f -- "$tmp" "$final" && return 0
  rm -f -- "$tmp"
  return 1
}

# _hp_pack_worker SLOT FIRST N BODY ITEM_KEY: a worker, in its own subshell. Runs item indices (0 .. N-1)
# one at a time: read from its pipe (_HP_PACK_QR[SLOT]) until this shell closes it, answering "SLOT
# STATUS" on the pipe back after each; without pipes, every index in order. Exits 1 when one of its
# items failed the task (_hp_die's exit says so on the pipe back: "SLOT x1").
_hp_pack_worker() {
  _HP_PACK_PARENT=0
  _HP_PACK_WORKER=1
  _HP_PACK_FAILED=0
  _HP_PACK_RUNNING=()
  [[ -n $_HP_PACK_BASE ]] && _HP_PACK_SLOT=$1
  _HP_CRITICAL=0
  _HP_PENDING_SIGNAL=""
  _hp_install_traps
  _HP_PACK_W=$1
  if ((${#_HP_PACK_Q[@]} > 0)); then
    # The writers of the workers' pipes are this shell's parent alone: its end ends them. What is left
    # open is closed in every command a step starts (_hp_step_exec).
    for _HP_PACK_FD in "${_HP_PACK_Q[@]}"; do exec {_HP_PACK_FD}>&-; done
    _HP_PACK_FDS=("${_HP_PACK_QR[@]}" "$_HP_PACK_DONE" "$_HP_PACK_DONE_W")
    _HP_PACK_FD=${_HP_PACK_QR[$1]}
    trap '_hp_pack_worker_exit $?' EXIT
    while :; do
      _HP_PACK_IDLE=1
      # Timed out now and then, as the task's shell's read is (a signal to an idle worker on bash < 4.4).
      read -r -t 1 -u "$_HP_PACK_FD" _HP_PACK_I
      _HP_PACK_READ=$?
      ((_HP_PACK_READ > 128)) && continue
      if ((_HP_PACK_READ != 0)) || [[ -z $_HP_PACK_I || $_HP_PACK_I == *[!0123456789]* || ${#_HP_PACK_I} -gt 9 ]] || ((10#$_HP_PACK_I >= $3)); then break; fi
      _HP_PACK_IDLE=0
      _hp_pack_item "$1" "$(($2 + _HP_PACK_I))" "$4" "$5" "${_HP_PACK_ITEMS[_HP_PACK_I]}"
      printf '%d %d\n' "$1" "$_HP_PACK_RC" >&"$_HP_PACK_DONE_W"
    done
    trap - EXIT
  else
    for ((_HP_PACK_I = 0; _HP_PACK_I < $3; _HP_PACK_I++)); do
      _HP_PACK_IDLE=0
      _hp_pack_item "$1" "$(($2 + _HP_PACK_I))" "$4" "$5" "${_HP_PACK_ITEMS[_HP_PACK_I]}"
    done
  fi
  exit "$_HP_PACK_FAILED"
}
_HP_PACK_I=0
_HP_PACK_W=0
_HP_PACK_READ=0

# A worker that ends in an item (_hp_die, a signal) says so on the pipe back.
_hp_pack_worker_exit() {
  { printf '%d x%d\n' "$_HP_PACK_W" "$1" >&"$_HP_PACK_DONE_W"; } 2>/dev/null
}

# _hp_pack_item SLOT INDEX BODY ITEM_KEY VALUE: one item, in its worker: the task index, the item (a map's:
# KEY and VALUE, with no ITEM_KEY none), the body; _HP_PACK_RC := 1 when it failed as an unpacked task
# would fail (see hp_job_end), else 0. What an item leaves in the worker's shell is reset first.
_hp_pack_item() {
  _HP_JOB_FAILED=0
  _HP_STOP=0
  _HP_UNIT_KEY=""
  _HP_UNIT_SKIP=0
  _HP_CUR_KEY=""
  HPCPIPE_TASK=$2
  export HPCPIPE_TASK
  _HP_SLURM_JSON="${_HP_SLURM_JSON%\"task\":*}\"task\":$HPCPIPE_TASK}"
  if [[ -n $4 ]]; then
    _HP_ITEM=$5
    _HP_HAS_ITEM=1
    _HP_CTX[$4]=$5
    HPCPIPE_ITEM=$5
    export HPCPIPE_ITEM
    export -- "$4=$5"
  fi
  "$3"
  _HP_PACK_RC=0
  if ((_HP_JOB_FAILED)); then
    _hp_log "item $HPCPIPE_TASK: failed"
    _HP_PACK_RC=1
    _HP_PACK_FAILED=1
  fi
}

# The task got a signal: pass it on to every running item, wait for them (they write their states), write
# the pack file, then exit 128+n, or 0 when every item ended allowed to fail (a map with continue_on_item_error).
_hp_pack_signal() {
  local sig=$1 num=$2
  _HP_PACK_PARENT=0
  _hp_pack_stop_items "$sig" || _HP_JOB_FAILED=1
  _hp_pack_finish
  _hp_log "job ${_HP_JOB_ID}: stopped by SIG$sig"
  ((_HP_JOB_FAILED)) && exit $((128 + num))
  exit 0
}

# _hp_pack_stop_items SIG: passes SIG on to every worker and waits for them all; status 1 when one of them
# exits non-zero.
_hp_pack_stop_items() {
  local pid
  for pid in "${!_HP_PACK_RUNNING[@]}"; do
    kill "-$1" "$pid" 2>/dev/null
  done
  _hp_pack_wait_workers
}

# hp_unit_begin KEY SIGNATURE ALLOW_FAILURE: opens a group child pipeline or map item.
hp_unit_begin() {
  _HP_UNIT_SKIP=0
  if ((_HP_STOP)); then
    _HP_UNIT_SKIP=1
    return 0
  fi
  local key=${1//"{i}"/$HPCPIPE_TASK}
  _hp_is_step_key "$key" || _hp_die "unit key '$key' is not a valid step key"
  _HP_UNIT_KEY=$key
  _HP_UNIT_SIG=$2
  _HP_UNIT_ALLOW=$3
  _HP_UNIT_FAILED_STEP=""
  _HP_UNIT_FAILURE=""
  _HP_UNIT_ERROR=""
  _HP_UNIT_ALLOWED=()
  _HP_UNIT_RAN=0
  _hp_now_us
  _HP_UNIT_START=$REPLY
  _hp_iso_time "$REPLY"
  _HP_UNIT_TS=$REPLY
}

# hp_unit_end: writes the unit's own state (success when every step without continue_on_error succeeded).
hp_unit_end() {
  if ((_HP_UNIT_SKIP)) || [[ -z $_HP_UNIT_KEY ]]; then
    _HP_UNIT_SKIP=0
    return 0
  fi
  # Every step was skipped as already done and the unit's own state records that success: keep it.
  if ((!_HP_UNIT_RAN)) && [[ -z $_HP_UNIT_FAILED_STEP ]] && _hp_already_done "$_HP_UNIT_KEY" "$_HP_UNIT_SIG"; then
    _hp_log "unit $_HP_UNIT_KEY: skipped (already succeeded)"
    _HP_UNIT_KEY=""
    return 0
  fi
  _HP_CRITICAL=1
  local failed=0
  if [[ -n $_HP_UNIT_FAILED_STEP ]]; then
    failed=1
    _hp_json_str "$_HP_UNIT_FAILED_STEP"
    _hp_meta_json "\"failed_step\":$REPLY"
    local meta=$REPLY
    _hp_json_str "$_HP_UNIT_FAILED_STEP: $_HP_UNIT_ERROR"
    _hp_state_json "$_HP_UNIT_KEY" "$_HP_UNIT_SIG" "$_HP_UNIT_START" "$_HP_UNIT_TS" false "\"$_HP_UNIT_FAILURE\"" "$REPLY" '[]' '{}' "$meta" null
  else
    local members=""
    if ((${#_HP_UNIT_ALLOWED[@]} > 0)); then
      _hp_json_array "${_HP_UNIT_ALLOWED[@]}"
      members="\"failed_allowed\":$REPLY"
    fi
    _hp_meta_json "$members"
    _hp_state_json "$_HP_UNIT_KEY" "$_HP_UNIT_SIG" "$_HP_UNIT_START" "$_HP_UNIT_TS" true null null '[]' '{}' "$REPLY" null
  fi
  _hp_write_state "$_HP_UNIT_KEY" "$REPLY"
  if ((failed)); then
    _hp_log "unit $_HP_UNIT_KEY: failed at $_HP_UNIT_FAILED_STEP"
    # A unit allowed to fail lets the job go on and succeed; a missing requirement always stops.
    if ((_HP_UNIT_ALLOW)) && [[ $_HP_UNIT_FAILURE != MISSING_REQUIREMENT ]]; then
      _HP_STOP=0
    else
      _HP_JOB_FAILED=1
    fi
  fi
  _HP_UNIT_KEY=""
  _hp_leave_critical
}

# hp_unknown_task: a group array task with no body (a bundle that does not match its array).
hp_unknown_task() {
  _hp_die "job $_HP_JOB_ID has no body for task $HPCPIPE_TASK"
}

# hp_job_end: exit 0 when every step (or unit) that had to succeed did, else 1.
hp_job_end() {
  if ((_HP_JOB_FAILED)); then
    _hp_log "job $_HP_JOB_ID: failed"
    exit 1
  fi
  _hp_log "job $_HP_JOB_ID: done"
  exit 0
}

# ---- steps ----------------------------------------------------------------
# REPLY := the value of KEY in a published-values file (the last line wins); status 1 when absent.
_hp_pub_lookup() {
  local file=$1 key=$2 line found=1
  [[ -f $file ]] || return 1
  while IFS= read -r line || [[ -n $line ]]; do
    if [[ $line == "$key="* ]]; then
      REPLY=${line#*=}
      found=0
    fi
  done <"$file"
  return "$found"
}

# REPLY := the state of KEY from before this task: its line in the pack's previous lines (a packed
# task), else states/<key>.json; status 1 when there is none.
_hp_prev_state() {
  local file="$_HP_RUN_DIR/states/$1.json"
  if [[ -n ${_HP_PACK_PREV[$1]+x} ]]; then
    REPLY=${_HP_PACK_PREV[$1]}
    return 0
  fi
  REPLY=""
  # A packed task whose map had no per-key state file when it began looks for none.
  [[ -n $_HP_PACK_SLOT ]] && ((!_HP_PACK_KEY_FILES)) && return 1
  [[ -f $file && ! -L $file ]] || return 1
  IFS= read -r -d '' -n 1048576 REPLY <"$file" || true
}

# True when the key's earlier state (_hp_prev_state) records a success of this exact definition
# (signature) and every provide it published is still in ctx/<key>.pub: a resumed run skips such a step.
_hp_already_done() {
  local key=$1 sig=$2 content k
  shift 2
  _hp_prev_state "$key" || return 1
  content=$REPLY
  [[ $content == '{"success":true,'* && $content == *"\"signature\":\"$sig\","* ]] || return 1
  for k in "$@"; do
    _hp_pub_lookup "$_HP_RUN_DIR/ctx/$key.pub" "$k" || return 1
  done
  return 0
}

# ---- step cache (src/cache) ---------------------------------------------------
# A submission that found steps in the store's cache restored their states (marked "cached") and
# outputs into this run; cache/store names the store and cache/keys/<step>.keys each step's key per item.

# True when the key's earlier state is a success of this definition restored from the step cache. A
# restore writes states/<key>.json at submission, after any job ran: in a packed task that file is looked
# at first (a line of the pack's from an earlier attempt is older), and its state becomes the key's line
# (the pack file replaces the per-key files of its keys).
_hp_restored() {
  local key=$1 sig=$2 file="$_HP_RUN_DIR/states/$1.json" content=""
  if [[ -n $_HP_PACK_SLOT ]] && ((_HP_PACK_KEY_FILES)) && [[ -f $file && ! -L $file ]]; then
    IFS= read -r -d '' -n 1048576 content <"$file" || true
    content=${content%$'\n'}
    if [[ $content != *$'\n'* ]] && _hp_is_restore "$content" "$sig"; then
      _hp_write_state "$key" "$content"
      return 0
    fi
  fi
  _hp_prev_state "$key" || return 1
  _hp_is_restore "$REPLY" "$sig"
}

_hp_is_restore() {
  [[ $1 == '{"success":true,'* && $1 == *"\"signature\":\"$2\","* && $1 == *',"cached":{'* ]]
}

# A packed map task's cache keys: of each per-item keys file, the lines of its items, read once by the
# task's shell (_hp_cache_slices) instead of once per step by skipping every line before the item's (which
# made a step of item i read i lines: a million-item map would read the file half a million times over).
# They are held in one array, each template's from its base index: a look-up is an index, not a substring
# of a string (which bash counts out character by character in a UTF-8 locale: 0.3-0.9 ms at 1,000 items).
declare -a _HP_CACHE_KEYS=()
declare -A _HP_CACHE_BASE=()
_HP_CACHE_FIRST=0
_HP_CACHE_COUNT=0
# _hp_cache_slices FIRST COUNT: every line of a keys file is 65 bytes (a key or 64 '-', then a newline), so
# item FIRST's line starts at byte 65*FIRST: `tail -c` goes there without reading the lines before it.
_HP_CACHE_OFF=0
_hp_cache_slices() {
  local f t base=0
  _HP_CACHE_KEYS=()
  _HP_CACHE_BASE=()
  _HP_CACHE_FIRST=$1
  _HP_CACHE_COUNT=$2
  _HP_CACHE_OFF=0
  if [[ ! -f $_HP_RUN_DIR/cache/store ]]; then
    # No store: the cache is off for the whole task; its steps look for no key.
    _HP_CACHE_OFF=1
    return 0
  fi
  for f in "$_HP_RUN_DIR/cache/keys/"*"{i}"*.keys; do
    [[ -f $f ]] || continue
    t=${f##*/}
    t=${t%.keys}
    # Each template's lines from its base, the next one's COUNT further on (whatever this file held).
    _HP_CACHE_BASE[$t]=$base
    mapfile -t -n "$2" -O "$base" _HP_CACHE_KEYS < <(tail -c "+$(($1 * 65 + 1))" -- "$f" 2>/dev/null | head -c "$(($2 * 65))")
    base=$((base + $2))
  done
  return 0
}

# True when REPLY is a cache key: 64 lowercase hex digits (a glob, not a regex: bash compiles a regex on
# every test, 0.1-0.2 ms; the set is spelled out, as a range could take in other letters in some locales).
_hp_is_cache_key() {
  [[ ${#REPLY} == 64 && $REPLY != *[!0123456789abcdef]* ]]
}

# REPLY := the cache key of step TEMPLATE (its key with {i}) in this task; status 1 when it has none.
_hp_cache_key() {
  local template=$1 file base idx=0
  local -a line=()
  ((_HP_CACHE_OFF)) && return 1
  if [[ -n ${_HP_CACHE_BASE[$template]+x} ]]; then
    idx=$((HPCPIPE_TASK - _HP_CACHE_FIRST))
    ((idx >= 0 && idx < _HP_CACHE_COUNT)) || return 1
    base=${_HP_CACHE_BASE[$template]}
    REPLY=${_HP_CACHE_KEYS[base + idx]-}
    _hp_is_cache_key
    return
  fi
  file="$_HP_RUN_DIR/cache/keys/$template.keys"
  [[ -f $file && -f $_HP_RUN_DIR/cache/store ]] || return 1
  [[ $template == *"{i}"* ]] && idx=$HPCPIPE_TASK
  mapfile -t -s "$idx" -n 1 line <"$file"
  REPLY=${line[0]:-}
  _hp_is_cache_key
}

# _hp_cache_put KEY TEMPLATE STATE PUBFILE OUTPUT...: stores a step that succeeded in the cache: its
# declared outputs as blobs (copied: the run's own files stay writable), then its entry, one line of JSON
# in its family's entries file.
# Best effort: a step that cannot be stored (an output that is not a regular file, a full disk) just is
# not cached. In this shell (no subshell): a step without outputs costs no process; the umask is the
# store's only while its files are made.
_HP_UMASK=""
_hp_cache_put() {
  local key=$1 template=$2 state=$3 pub=$4
  shift 4
  local ck
  _hp_cache_key "$template" || return 0
  ck=$REPLY
  _hp_cache_family "$template" || return 0
  _hp_cache_store || return 0
  # An entry appended to the file this process already has for the family makes no file: no umask to set.
  if (($# == 0)) && [[ $_HP_CACHE_PACK_PID == "$BASHPID" && -n ${_HP_CACHE_PACK[$REPLY]:-} ]]; then
    _hp_cache_write "$key" "$ck" "$REPLY" "$state" "$pub"
    return 0
  fi
  [[ -n $_HP_UMASK ]] || _HP_UMASK=$(umask)
  if [[ -n $_HP_CACHE_GROUP ]]; then umask 007; else umask 077; fi
  _hp_cache_write "$key" "$ck" "$REPLY" "$state" "$pub" "$@"
  umask "$_HP_UMASK"
  return 0
}

# REPLY := the family of step TEMPLATE (cache/keys/TEMPLATE.family: its definition, code and environment
# digested), the directory its entries go to; read once per process. Status 1 when it has none.
declare -A _HP_CACHE_FAMS=()
_hp_cache_family() {
  local fam=""
  if [[ -z ${_HP_CACHE_FAMS[$1]+x} ]]; then
    [[ -f $_HP_RUN_DIR/cache/keys/$1.family ]] && { IFS= read -r fam <"$_HP_RUN_DIR/cache/keys/$1.family" || true; }
    [[ $fam =~ ^[0-9a-f]{64}$ ]] || fam=""
    _HP_CACHE_FAMS[$1]=$fam
  fi
  REPLY=${_HP_CACHE_FAMS[$1]}
  [[ -n $REPLY ]]
}

# _HP_CACHE_STORE, _HP_CACHE_GROUP := the store's path and group (cache/store), read once; status 1 when
# the run has no store (the cache is off).
_HP_CACHE_STORE=""
_HP_CACHE_GROUP=""
_hp_cache_store() {
  local -a lines=()
  [[ -n $_HP_CACHE_STORE ]] && return 0
  [[ -f $_HP_RUN_DIR/cache/store ]] || return 1
  mapfile -t -n 2 lines <"$_HP_RUN_DIR/cache/store"
  [[ ${lines[0]:-} == /* ]] || return 1
  _HP_CACHE_STORE=${lines[0]}
  _HP_CACHE_GROUP=${lines[1]:-}
}

# _hp_cache_write KEY CACHE_KEY FAMILY STATE PUBFILE OUTPUT...: the blobs, then the entry: one line
# appended to this process's entries file of the step's family, <store>/cache/f/FAMILY/<run>.<host>.<pid>.jsonl
# (src/cache/remote.ts). One file per family and process, not one per entry: a million items make no
# million files, and an item costs one append, no file made. The file is created with O_EXCL (noclobber),
# so it is ours and is not a link; in its sticky directory nobody else replaces it. Its only writer is
# this process; a line a crash cut short is not valid JSON, and a reader skips it (a miss).
declare -A _HP_CACHE_PACK=()
_HP_CACHE_PACK_PID=""
_HP_CACHE_RUN_JSON=""  # the run directory's name as JSON
_hp_cache_write() {
  local key=$1 ck=$2 fam=$3 state=$4 pub=$5 store=$_HP_CACHE_STORE group=$_HP_CACHE_GROUP f sum name i blob tmp dir
  local outs="" content="" entry file noclobber=0
  local -a paths=() sums=()
  shift 5
  for f in "$@"; do
    if [[ $f == /* || ! -f $_HP_RUN_DIR/work/$f || -L $_HP_RUN_DIR/work/$f ]]; then
      _hp_log "step $key: not stored in the step cache (output '$f' is not a regular file under work/)"
      return 0
    fi
    paths+=("$_HP_RUN_DIR/work/$f")
  done
  if ((${#paths[@]} > 0)); then
    while read -r sum name; do sums+=("${sum#\\}"); done < <(sha256sum -- "${paths[@]}")
    ((${#sums[@]} == ${#paths[@]})) || return 0
  fi
  for i in "${!paths[@]}"; do
    sum=${sums[i]}
    [[ $sum =~ ^[0-9a-f]{64}$ ]] || return 0
    blob="$store/blobs/${sum:0:2}/$sum"
    if [[ ! -f $blob ]]; then
      [[ -d ${blob%/*} ]] || mkdir -p -- "${blob%/*}" || return 0
      tmp="${blob%/*}/.$sum.$BASHPID.tmp"
      if ! cp -- "${paths[i]}" "$tmp"; then
        rm -f -- "$tmp"
        return 0
      fi
      # A blob is named by what was copied, hashed again: the output may have changed since it was hashed
      # (a process the step left behind still writing it). Only on a miss: one more sha256sum.
      read -r sum name < <(sha256sum -- "$tmp")
      sum=${sum#\\}
      blob="$store/blobs/${sum:0:2}/$sum"
      if ! { [[ $sum =~ ^[0-9a-f]{64}$ ]] && { [[ -d ${blob%/*} ]] || mkdir -p -- "${blob%/*}"; } && chmod 0444 -- "$tmp" && mv -f -- "$tmp" "$blob"; }; then
        rm -f -- "$tmp"
        return 0
      fi
    fi
    _hp_json_str "${paths[i]#"$_HP_RUN_DIR/work/"}"
    outs+="${outs:+,}{\"path\":$REPLY,\"sha256\":\"$sum\"}"
  done
  if [[ -s $pub ]]; then
    IFS= read -r -d '' content <"$pub" || true
    _hp_json_str "$content"
    content=$REPLY
  else
    content='""'
  fi
  if [[ -z $_HP_CACHE_RUN_JSON ]]; then
    _hp_json_str "${_HP_RUN_DIR##*/}"
    _HP_CACHE_RUN_JSON=$REPLY
  fi
  _hp_json_str "$key"
  entry="{\"format\":1,\"key\":\"$ck\",\"step\":$REPLY,\"run\":$_HP_CACHE_RUN_JSON,\"state\":$state,\"pub\":$content,\"outputs\":[$outs]}"
  [[ $_HP_CACHE_PACK_PID == "$BASHPID" ]] || { _HP_CACHE_PACK=(); _HP_CACHE_PACK_PID=$BASHPID; }
  file=${_HP_CACHE_PACK[$fam]:-}
  if [[ -n $file ]]; then
    if { printf '%s\n' "$entry" >>"$file"; } 2>/dev/null; then
      _hp_log "step $key: stored in the step cache"
    fi
    return 0
  fi
  dir="$store/cache/f/$fam"
  if [[ ! -d $dir ]]; then
    mkdir -p -- "$dir" || return 0
    # Sticky: nobody replaces or removes another user's file (the owner of a file is its entries' writer).
    if [[ -n $group ]]; then chgrp -- "$group" "$dir" 2>/dev/null; chmod 3770 -- "$dir" 2>/dev/null; else chmod 1700 -- "$dir" 2>/dev/null; fi
  fi
  file=${HOSTNAME:-host}
  file="$dir/${_HP_RUN_DIR##*/}.${file//[^A-Za-z0-9.-]/_}.$BASHPID.jsonl"
  [[ $- == *C* ]] && noclobber=1
  set -C
  if { printf '%s\n' "$entry" >"$file"; } 2>/dev/null; then
    ((noclobber)) || set +C
  else
    ((noclobber)) || set +C
    # It exists: this process id wrote it in an earlier job of this run on this host. Ours and a regular
    # file: go on after it, on a line of its own (its last line may have been cut); anything else: not stored.
    [[ -f $file && ! -L $file && -O $file ]] || return 0
    { printf '\n%s\n' "$entry" >>"$file"; } 2>/dev/null || return 0
  fi
  _HP_CACHE_PACK[$fam]=$file
  _hp_log "step $key: stored in the step cache"
  return 0
}

# Records a finished step: its state file, the unit's first failure, whether the body stops.
_hp_step_done() {
  local key=$1 coe=$2 failure=$3 error=$4 state=$5
  _hp_write_state "$key" "$state"
  if [[ -z $failure ]]; then
    _hp_log "step $key: succeeded"
    return 0
  fi
  _hp_log "step $key: $failure: $error"
  if ((coe)) && [[ $failure != MISSING_REQUIREMENT ]]; then
    [[ -n $_HP_UNIT_KEY ]] && _HP_UNIT_ALLOWED+=("$key")
    return 0
  fi
  _HP_STOP=1
  if [[ -n $_HP_UNIT_KEY ]]; then
    _HP_UNIT_FAILED_STEP=$key
    _HP_UNIT_FAILURE=$failure
    _HP_UNIT_ERROR=$error
  else
    _HP_JOB_FAILED=1
  fi
}

# The step hp_step is running: its arguments (_hp_step_args) and what its phases find. Globals, not
# locals: a local of the function that starts the command would hide the context value of its name.
_HP_S_TEMPLATE=""     # the key as written (a map item's step key holds {i})
_HP_S_KEY=""          # the key in this task
_HP_S_SIG=""
_HP_S_CMD=""
_HP_S_COE=0
_HP_S_IDEM=0
_HP_S_REQUIRES=()
_HP_S_PROVIDES=()
_HP_S_OUTPUTS=()
_HP_S_NEED_KEYS=()
_HP_S_NEED_FROM=()
_HP_S_ENV_KEYS=()
_HP_S_ENV=()          # the --env entries as NAME=value
_HP_S_PAIRS=()        # the needs found, as NAME=value
_HP_S_MISSING=()      # the required keys that no source has
_HP_S_PUB=""          # ctx/<key>.pub
_HP_S_RC=0            # the command's exit status
_HP_S_FILES=()        # the declared output files that exist
_HP_S_PROBLEMS=()     # why a command that exited 0 still failed

# hp_step --key K --signature S [--require K]... [--provide K]... [--output PATH]...
#         [--need KEY FROM]... [--env NAME VALUE]... [--continue-on-error] [--idempotent] --command CMD
# Runs one step's command with bash in work/ and writes states/<key>.json.
# An --idempotent step whose state already records a success of the same signature is skipped.
hp_step() {
  _hp_step_args hp_step "$@"
  ((_HP_STOP)) && return 0
  _hp_step_check
  _hp_step_skipped && return 0
  _HP_UNIT_RAN=1
  _hp_step_start
  if _hp_step_needs; then
    _hp_step_exec
    _hp_step_outputs
    _hp_step_finish "$REPLY"
  else
    _hp_step_missing "$_HP_S_KEY" "$_HP_CUR_START" "$_HP_CUR_TS" "$_HP_CUR_PROVIDES_JSON" "${_HP_S_MISSING[@]}"
  fi
  _HP_CUR_KEY=""
  _hp_leave_critical
  return 0
}

# _hp_step_args CALLER HP_STEP_ARGS...: the arguments into _HP_S_*; a malformed list stops the job.
_hp_step_args() {
  local caller=$1 has_cmd=0
  shift
  _HP_S_TEMPLATE="" _HP_S_SIG="" _HP_S_CMD="" _HP_S_COE=0 _HP_S_IDEM=0
  _HP_S_REQUIRES=() _HP_S_PROVIDES=() _HP_S_OUTPUTS=() _HP_S_NEED_KEYS=() _HP_S_NEED_FROM=() _HP_S_ENV_KEYS=() _HP_S_ENV=()
  while (($# > 0)); do
    case $1 in
      --key) _HP_S_TEMPLATE=$2 && shift 2 ;;
      --signature) _HP_S_SIG=$2 && shift 2 ;;
      --require) _HP_S_REQUIRES+=("$2") && shift 2 ;;
      --provide) _HP_S_PROVIDES+=("$2") && shift 2 ;;
      --output) _HP_S_OUTPUTS+=("$2") && shift 2 ;;
      --need) _HP_S_NEED_KEYS+=("$2") && _HP_S_NEED_FROM+=("$3") && shift 3 ;;
      --env) _HP_S_ENV_KEYS+=("$2") && _HP_S_ENV+=("$2=$3") && shift 3 ;;
      --continue-on-error) _HP_S_COE=1 && shift ;;
      --idempotent) _HP_S_IDEM=1 && shift ;;
      --command) _HP_S_CMD=$2 && has_cmd=1 && shift 2 ;;
      *) _hp_die "$caller: unexpected argument '$1'" ;;
    esac || _hp_die "$caller: '$1' is missing its value"
  done
  ((has_cmd)) || _hp_die "$caller: no --command"
}

# _HP_S_KEY := the step's key in this task; a bad key or env name stops the job.
_hp_step_check() {
  local k
  _HP_S_KEY=${_HP_S_TEMPLATE//"{i}"/$HPCPIPE_TASK}
  _hp_is_step_key "$_HP_S_KEY" || _hp_die "step key '$_HP_S_KEY' is not a valid step key"
  for k in "${_HP_S_ENV_KEYS[@]}"; do
    _hp_is_context_key "$k" || _hp_die "step $_HP_S_KEY: env name '$k' is not a usable variable name"
  done
}

# True when the step does not run: an --idempotent step that already succeeded, or one restored from the step cache.
_hp_step_skipped() {
  if ((_HP_S_IDEM)) && _hp_already_done "$_HP_S_KEY" "$_HP_S_SIG" "${_HP_S_PROVIDES[@]}"; then
    _hp_log "step $_HP_S_KEY: skipped (idempotent, already succeeded with signature $_HP_S_SIG)"
    return 0
  fi
  if _hp_restored "$_HP_S_KEY" "$_HP_S_SIG"; then
    _hp_log "step $_HP_S_KEY: restored from the step cache"
    return 0
  fi
  return 1
}

# The step is running from now on: what the signal handler records (_HP_CUR_*), and the log line.
_hp_step_start() {
  _hp_json_array "${_HP_S_PROVIDES[@]}"
  _HP_CUR_PROVIDES_JSON=$REPLY
  _HP_CUR_SIG=$_HP_S_SIG
  _hp_now_us
  _HP_CUR_START=$REPLY
  _hp_iso_time "$REPLY"
  _HP_CUR_TS=$REPLY
  _HP_CUR_KEY=$_HP_S_KEY
  _HP_CUR_LOG=""
  _hp_log "step $_HP_S_KEY: start"
}

# _HP_S_PAIRS := the needs found: from the initial context (or map item), else the upstream step's
# published values. _HP_S_MISSING := the required keys none of them has; status 1 when there are some.
_hp_step_needs() {
  local i k from
  local -A resolved=()
  _HP_S_PAIRS=()
  _HP_S_MISSING=()
  for i in "${!_HP_S_NEED_KEYS[@]}"; do
    k=${_HP_S_NEED_KEYS[i]}
    _hp_is_context_key "$k" || _hp_die "step $_HP_S_KEY: needed key '$k' is not a usable variable name"
    from=${_HP_S_NEED_FROM[i]//"{i}"/$HPCPIPE_TASK}
    if [[ $from == context ]]; then
      [[ -n ${_HP_CTX[$k]+x} ]] || continue
      _HP_S_PAIRS+=("$k=${_HP_CTX[$k]}")
      resolved[$k]=1
    else
      _hp_is_step_key "$from" || _hp_die "step $_HP_S_KEY: source '$from' of '$k' is not a valid step key"
      if _hp_pub_lookup "$_HP_RUN_DIR/ctx/$from.pub" "$k"; then
        _HP_S_PAIRS+=("$k=$REPLY")
        resolved[$k]=1
      fi
    fi
  done
  for k in "${_HP_S_REQUIRES[@]}"; do
    [[ -n ${resolved[$k]+x} || -n ${_HP_CTX[$k]+x} ]] || _HP_S_MISSING+=("$k")
  done
  ((${#_HP_S_MISSING[@]} == 0))
}

# _hp_step_missing KEY START TS PROVIDES_JSON MISSING...: records step KEY (a plain step, or one item of a
# batch step) as failed with MISSING_REQUIREMENT, naming the missing keys (its command does not run).
_hp_step_missing() {
  local key=$1 start=$2 ts=$3 provides=$4 list="" s="" error meta k
  shift 4
  _HP_CRITICAL=1
  for k in "$@"; do list+="${list:+, }'$k'"; done
  (($# > 1)) && s=s
  error="missing requirement$s $list"
  _hp_json_array "$@"
  _hp_meta_json "\"exit_code\":null,\"reason\":null,\"missing\":$REPLY"
  meta=$REPLY
  _hp_json_str "$error"
  _hp_state_json "$key" "$_HP_S_SIG" "$start" "$ts" false '"MISSING_REQUIREMENT"' "$REPLY" "$provides" '{}' "$meta" null
  _hp_step_done "$key" "$_HP_S_COE" MISSING_REQUIREMENT "$error" "$REPLY"
}

# Runs the command (bash -c, in work/, stdin /dev/null, logs/<key>.out and .err) with the needs, the
# HPCPIPE_* variables and the --env entries, in that order; _HP_S_RC := its exit status. From its end
# on, a signal waits for the state file (_HP_CRITICAL). An item of a pack appends to its slot's logs
# instead, after a marker line naming the step (`\n\x1ehpcpipe KEY\n`, in both files).
_HP_S_LOG_OUT=""
_HP_S_LOG_ERR=""
_hp_step_exec() {
  _HP_S_PUB="$_HP_RUN_DIR/ctx/$_HP_S_KEY.pub"
  # The command creates it when it publishes; a rerun's is emptied (no process either way).
  if [[ -e $_HP_S_PUB || -L $_HP_S_PUB ]]; then : >"$_HP_S_PUB" || _hp_die "cannot empty $_HP_S_PUB"; fi
  if [[ -n $_HP_PACK_SLOT ]]; then
    _HP_S_LOG_OUT="$_HP_RUN_DIR/logs/$_HP_PACK_BASE.s$_HP_PACK_SLOT"
    _HP_S_LOG_ERR=$_HP_S_LOG_OUT.err
    _HP_S_LOG_OUT+=.out
    printf '\n\036hpcpipe %s\n' "$_HP_S_KEY" >>"$_HP_S_LOG_OUT"
    printf '\n\036hpcpipe %s\n' "$_HP_S_KEY" >>"$_HP_S_LOG_ERR"
    # Step keys and the base are [A-Za-z0-9_.-]: JSON as they are.
    _HP_CUR_LOG=",\"log\":\"logs/$_HP_PACK_BASE.s$_HP_PACK_SLOT\""
  else
    _HP_S_LOG_OUT="$_HP_RUN_DIR/logs/$_HP_S_KEY.out"
    _HP_S_LOG_ERR="$_HP_RUN_DIR/logs/$_HP_S_KEY.err"
    : >"$_HP_S_LOG_OUT"
    : >"$_HP_S_LOG_ERR"
  fi
  # The command runs in its own process group, so a signal can stop all of it.
  set -m
  (
    # A packed task's pipes are its wrapper's: a process the command leaves behind must not hold them.
    for _HP_PACK_FD in "${_HP_PACK_FDS[@]}"; do exec {_HP_PACK_FD}>&-; done
    cd -- "$_HP_RUN_DIR/work" || exit 126
    # One `export` per list, with no loop variable that could hide a context value of its name.
    ((${#_HP_S_PAIRS[@]} == 0)) || export -- "${_HP_S_PAIRS[@]}"
    export HPCPIPE_STEP="$_HP_S_KEY" HPCPIPE_PUBLISH="$_HP_S_PUB"
    ((${#_HP_S_ENV[@]} == 0)) || export -- "${_HP_S_ENV[@]}"
    exec bash -c "$_HP_S_CMD"
  ) </dev/null >>"$_HP_S_LOG_OUT" 2>>"$_HP_S_LOG_ERR" &
  _HP_CHILD=$!
  set +m
  _HP_S_RC=0
  wait "$_HP_CHILD" || _HP_S_RC=$?
  _HP_CRITICAL=1
  _HP_CHILD=""
  _hp_await_own_signal
}

# REPLY := the step's outputs JSON (published values and declared files); _HP_S_FILES := the declared
# files found; _HP_S_PROBLEMS := what fails the validation of a command that exited 0.
_hp_step_outputs() {
  local size published
  _HP_S_PROBLEMS=()
  _hp_step_files "${_HP_S_OUTPUTS[@]}"
  size=0
  # A step that published nothing costs no process.
  if [[ -s $_HP_S_PUB ]]; then size=$(wc -c <"$_HP_S_PUB" 2>/dev/null) || size=0; fi
  _hp_step_published "$_HP_S_PUB" "$size" "${_HP_S_PROVIDES[@]}"
  published=$REPLY
  _hp_json_array "${_HP_S_FILES[@]}"
  REPLY="{\"published\":{$published},\"files\":$REPLY}"
}

# _hp_step_files OUTPUT...: _HP_S_FILES := the declared output files that exist (relative to work/); a
# map item's patterns get {i} (its index) and {item} (its value, quoted: never a pattern, no '&'), and
# must stay in work/. What is missing goes to _HP_S_PROBLEMS.
_hp_step_files() {
  local o path
  _HP_S_FILES=()
  for o in "$@"; do
    if ((_HP_HAS_ITEM)); then
      path=${o//"{i}"/"$HPCPIPE_TASK"}
      path=${path//"{item}"/"$_HP_ITEM"}
      if [[ $path != "$o" && ($path == /* || /$path/ == */../*) ]]; then
        _HP_S_PROBLEMS+=("output '$o' for this item is '$path', which leaves the working directory")
        continue
      fi
      o=$path
    fi
    path=$o
    [[ $path == /* ]] || path="$_HP_RUN_DIR/work/$o"
    if [[ -e $path ]]; then _HP_S_FILES+=("$o"); else _HP_S_PROBLEMS+=("missing output file '$o'"); fi
  done
}

# _hp_step_published PUBFILE SIZE PROVIDE...: REPLY := the published values of a step as JSON members
# ("NAME":"value": names in order of appearance, the last value wins). More than the limit of bytes, a
# line that is not NAME=value, a provide not published: _HP_S_PROBLEMS.
_hp_step_published() {
  local pub=$1 size=$2 line n=0 bad=0 pk joined members=""
  local -A published=()
  local -a order=() not_provided=()
  shift 2
  if ((size > _HP_PUBLISH_MAX_BYTES)); then
    _HP_S_PROBLEMS+=("published values exceed $_HP_PUBLISH_MAX_BYTES bytes")
  elif [[ -f $pub ]]; then
    while IFS= read -r line || [[ -n $line ]]; do
      n=$((n + 1))
      [[ -z $line ]] && continue
      pk=${line%%=*}
      if [[ $line != *=* ]] || ! _hp_is_context_key "$pk"; then
        ((bad)) || _HP_S_PROBLEMS+=("line $n of the published values is not NAME=value with NAME a usable variable name")
        bad=1
        continue
      fi
      [[ -n ${published[$pk]+x} ]] || order+=("$pk")
      published[$pk]=${line#*=}
    done <"$pub"
  fi
  for pk in "${order[@]}"; do
    _hp_json_str "${published[$pk]}"
    members+="${members:+,}\"$pk\":$REPLY"
  done
  for pk in "$@"; do
    [[ -n ${published[$pk]+x} ]] || not_provided+=("'$pk'")
  done
  if ((${#not_provided[@]} > 0)); then
    printf -v joined '%s, ' "${not_provided[@]}"
    _HP_S_PROBLEMS+=("did not provide ${joined%, }")
  fi
  REPLY=$members
}

# _hp_step_finish OUTPUTS_JSON: the verdict on the command that ran, its state file, and (a success)
# its entry in the step cache.
_hp_step_finish() {
  local outputs_json=$1 failure="" error="" meta state_json
  if ((_HP_S_RC != 0)); then
    failure=STEP_FAILED
    error="command exited with status $_HP_S_RC"
  elif ((${#_HP_S_PROBLEMS[@]} > 0)); then
    failure=STEP_FAILED
    printf -v error '%s; ' "${_HP_S_PROBLEMS[@]}"
    error="validation failed: ${error%; }"
  fi
  _hp_meta_json "\"exit_code\":$_HP_S_RC,\"reason\":null$_HP_CUR_LOG"
  meta=$REPLY
  if [[ -z $failure ]]; then
    _hp_state_json "$_HP_S_KEY" "$_HP_S_SIG" "$_HP_CUR_START" "$_HP_CUR_TS" true null null "$_HP_CUR_PROVIDES_JSON" \
      "$outputs_json" "$meta" "$_HP_S_RC"
  else
    _hp_json_str "$error"
    _hp_state_json "$_HP_S_KEY" "$_HP_S_SIG" "$_HP_CUR_START" "$_HP_CUR_TS" false "\"$failure\"" "$REPLY" \
      "$_HP_CUR_PROVIDES_JSON" "$outputs_json" "$meta" "$_HP_S_RC"
  fi
  state_json=$REPLY
  _hp_step_done "$_HP_S_KEY" "$_HP_S_COE" "$failure" "$error" "$state_json"
  [[ -n $failure ]] || _hp_cache_put "$_HP_S_KEY" "$_HP_S_TEMPLATE" "$state_json" "$_HP_S_PUB" "${_HP_S_FILES[@]}"
}

# ---- batch steps ----------------------------------------------------------
# A map task with batch steps (docs/runtime-contract.md, "Batch steps") keeps every item of the task in
# this shell and runs each step across all of them: a batch step as ONE command that gets the item list
# and reports each item on one line, a per-item step once per item. Items whose earlier step failed are
# left out of the later steps. Per-item state lives in these arrays between steps.
_HP_BATCH=0
_HP_B_TASK=0          # the array task (HPCPIPE_TASK holds the index of the item selected)
_HP_B_MAP=""
_HP_B_KEYNAME=""
_HP_B_IDX=()          # the item indices of this task
_HP_B_I=""
declare -A _HP_B_VAL=() _HP_B_STOP=() _HP_B_UKEY=() _HP_B_USTART=() _HP_B_UTS=() _HP_B_UFSTEP=() _HP_B_UFAIL=()
declare -A _HP_B_UERR=() _HP_B_UALLOWED=() _HP_B_URAN=() _HP_B_USKIP=()
# The batch command that is running (for the signal handler).
_HP_B_RUNNING=()
_HP_B_RUN_KEY=""
_HP_B_RUN_SIG=""
_HP_B_RUN_START=0
_HP_B_RUN_TS=""
_HP_B_RUN_COE=0
_HP_B_RUN_LOG=""
_HP_B_REPORT=""
_HP_B_PROVIDES=()
_HP_B_OUTPUTS=()
_HP_B_REPORT_MAX_BYTES=16777216

# hp_batch_map ITEMS_FILE ITEM_KEY PER_TASK MAP_KEY: this task's items are lines HPCPIPE_TASK*PER_TASK+1
# .. +PER_TASK of the items file (one line when the map is not packed).
hp_batch_map() {
  local file="$_HP_RUN_DIR/$1" key=$2 per=$3 map=$4 i
  local -a lines=()
  _hp_is_context_key "$key" || _hp_die "map item key '$key' is not a usable variable name"
  [[ $per =~ ^[1-9][0-9]{0,8}$ ]] || _hp_die "hp_batch_map: bad items per task '$per'"
  _hp_is_step_key "$map" || _hp_die "hp_batch_map: map key '$map' is not a valid step key"
  [[ -r $file ]] || _hp_die "cannot read the items file $file"
  local first=$((HPCPIPE_TASK * per))
  mapfile -t -s "$first" -n "$per" lines <"$file"
  ((${#lines[@]} > 0)) || _hp_die "no items for task $HPCPIPE_TASK in $file"
  _HP_BATCH=1
  _HP_B_TASK=$HPCPIPE_TASK
  _HP_B_MAP=$map
  _HP_B_KEYNAME=$key
  for i in "${!lines[@]}"; do
    _HP_B_IDX+=("$((first + i))")
    _HP_B_VAL[$((first + i))]=${lines[i]}
    _HP_B_STOP[$((first + i))]=0
  done
  _hp_log "job $_HP_JOB_ID: task $HPCPIPE_TASK runs items $first-$((first + ${#lines[@]} - 1)) step by step (batch steps)"
}

# Makes item I the current one: task index, item value and variables, and its unit's state.
_hp_batch_select() {
  local i=$1
  HPCPIPE_TASK=$i
  export HPCPIPE_TASK
  _HP_SLURM_JSON="${_HP_SLURM_JSON%\"task\":*}\"task\":$i}"
  _HP_ITEM=${_HP_B_VAL[$i]}
  _HP_HAS_ITEM=1
  _HP_CTX[$_HP_B_KEYNAME]=$_HP_ITEM
  HPCPIPE_ITEM=$_HP_ITEM
  export HPCPIPE_ITEM
  export -- "$_HP_B_KEYNAME=$_HP_ITEM"
  _HP_STOP=${_HP_B_STOP[$i]}
  _HP_UNIT_KEY=${_HP_B_UKEY[$i]-}
  _HP_UNIT_START=${_HP_B_USTART[$i]-0}
  _HP_UNIT_TS=${_HP_B_UTS[$i]-}
  _HP_UNIT_FAILED_STEP=${_HP_B_UFSTEP[$i]-}
  _HP_UNIT_FAILURE=${_HP_B_UFAIL[$i]-}
  _HP_UNIT_ERROR=${_HP_B_UERR[$i]-}
  _HP_UNIT_ALLOWED=()
  [[ -n ${_HP_B_UALLOWED[$i]-} ]] && mapfile -t _HP_UNIT_ALLOWED <<<"${_HP_B_UALLOWED[$i]}"
  _HP_UNIT_RAN=${_HP_B_URAN[$i]-0}
  _HP_UNIT_SKIP=${_HP_B_USKIP[$i]-0}
}

# Keeps the current item's state (see _hp_batch_select).
_hp_batch_save() {
  local i=$1 IFS=$'\n'
  _HP_B_STOP[$i]=$_HP_STOP
  _HP_B_UKEY[$i]=$_HP_UNIT_KEY
  _HP_B_USTART[$i]=$_HP_UNIT_START
  _HP_B_UTS[$i]=$_HP_UNIT_TS
  _HP_B_UFSTEP[$i]=$_HP_UNIT_FAILED_STEP
  _HP_B_UFAIL[$i]=$_HP_UNIT_FAILURE
  _HP_B_UERR[$i]=$_HP_UNIT_ERROR
  _HP_B_UALLOWED[$i]="${_HP_UNIT_ALLOWED[*]}"
  _HP_B_URAN[$i]=$_HP_UNIT_RAN
  _HP_B_USKIP[$i]=$_HP_UNIT_SKIP
}

# hp_batch_unit_begin KEY SIGNATURE ALLOW_FAILURE: opens the unit of every item (see hp_unit_begin).
hp_batch_unit_begin() {
  local i
  for i in "${_HP_B_IDX[@]}"; do
    _hp_batch_select "$i"
    hp_unit_begin "$@"
    _hp_batch_save "$i"
  done
}

# hp_batch_unit_end: writes the unit state of every item (see hp_unit_end), in one bulk.
hp_batch_unit_end() {
  local i
  _hp_states_bulk_begin
  for i in "${_HP_B_IDX[@]}"; do
    _hp_batch_select "$i"
    hp_unit_end
    _hp_batch_save "$i"
  done
  _hp_states_bulk_end
}

# hp_batch_step [--batch] HP_STEP_ARGS...: a step of a map task with batch steps. With --batch, ONE
# command for every item still running (_hp_batch_prepare, _hp_batch_exec); without, hp_step once per
# such item.
hp_batch_step() {
  if [[ ${1-} == --batch ]]; then
    shift
    _hp_batch_prepare "$@" && _hp_batch_exec
    return 0
  fi
  # A global loop variable: a local would replace the context value of its name in the commands.
  for _HP_B_I in "${_HP_B_IDX[@]}"; do
    [[ ${_HP_B_STOP[$_HP_B_I]} == 1 ]] && continue
    _hp_batch_select "$_HP_B_I"
    hp_step "$@"
    _hp_batch_save "$_HP_B_I"
  done
}

# hp_batch_report INDEX ok|failed [MESSAGE]: one report line, for batch commands written in bash
# (exported to the command as a function).
hp_batch_report() {
  local msg=${3-}
  [[ -n ${HPCPIPE_BATCH_REPORT:-} ]] || { printf 'hp_batch_report: HPCPIPE_BATCH_REPORT is not set\n' >&2 && return 2; }
  [[ $1 =~ ^[0-9]{1,9}$ && ($2 == ok || $2 == failed) ]] || { printf 'hp_batch_report: usage: hp_batch_report INDEX ok|failed [MESSAGE]\n' >&2 && return 2; }
  msg=${msg//[$'\t\n\r']/ }
  printf '%s\t%s\t%s\n' "$1" "$2" "${msg:0:1000}" >>"$HPCPIPE_BATCH_REPORT"
}

# _hp_batch_prepare HP_STEP_ARGS...: the batch step up to its command. Items already done (--idempotent)
# are skipped and items missing a requirement fail as in hp_step; the others are listed in
# $HPCPIPE_BATCH_ITEMS, one line each:
#   INDEX <TAB> VALUE <TAB> PUBLISH_FILE <TAB> OUTPUT_DIR <TAB> NEEDS_FILE
# for the command (_hp_batch_exec) that runs once with $HPCPIPE_BATCH_REPORT to append `INDEX <TAB>
# ok|failed [<TAB> MESSAGE]` lines to. Status 1 when no item is left to run.
_hp_batch_prepare() {
  _hp_step_args hp_batch_step "$@"
  local k i n
  for k in "${_HP_S_ENV_KEYS[@]}"; do
    _hp_is_context_key "$k" || _hp_die "step $_HP_S_TEMPLATE: env name '$k' is not a usable variable name"
  done
  for k in "${_HP_S_NEED_KEYS[@]}"; do
    _hp_is_context_key "$k" || _hp_die "step $_HP_S_TEMPLATE: needed key '$k' is not a usable variable name"
  done
  local bname=${_HP_S_TEMPLATE//"{i}"/task$_HP_B_TASK}
  _hp_is_step_key "$bname" || _hp_die "step key '$_HP_S_TEMPLATE' is not a valid step key"
  local bdir="$_HP_RUN_DIR/batch/$bname"
  local list="$bdir/items.tsv" report="$bdir/report.tsv"
  mkdir -p -- "$bdir/needs" || _hp_die "cannot create $bdir"
  _hp_json_array "${_HP_S_PROVIDES[@]}"
  local provides_json=$REPLY
  _hp_now_us
  local start=$REPLY ts
  _hp_iso_time "$REPLY"
  ts=$REPLY

  local -a run=() shared=() newdirs=()
  local -A shared_seen=()
  local ikey from pub dir needs_file line
  local listing=""
  for i in "${_HP_B_IDX[@]}"; do
    [[ ${_HP_B_STOP[$i]} == 1 ]] && continue
    _hp_batch_select "$i"
    ikey=${_HP_S_TEMPLATE//"{i}"/$i}
    _hp_is_step_key "$ikey" || _hp_die "step key '$ikey' is not a valid step key"
    if ((_HP_S_IDEM)) && _hp_already_done "$ikey" "$_HP_S_SIG" "${_HP_S_PROVIDES[@]}"; then
      _hp_log "step $ikey: skipped (idempotent, already succeeded with signature $_HP_S_SIG)"
      continue
    fi
    _HP_UNIT_RAN=1
    # Needs, as in hp_step: from the initial context or the item, else from the upstream step's published values.
    local -a pairs=() missing=()
    local -A resolved=()
    for n in "${!_HP_S_NEED_KEYS[@]}"; do
      k=${_HP_S_NEED_KEYS[n]}
      from=${_HP_S_NEED_FROM[n]//"{i}"/$i}
      if [[ $from == context ]]; then
        [[ -n ${_HP_CTX[$k]+x} ]] || continue
        line="$k=${_HP_CTX[$k]}"
      else
        _hp_is_step_key "$from" || _hp_die "step $ikey: source '$from' of '$k' is not a valid step key"
        _hp_pub_lookup "$_HP_RUN_DIR/ctx/$from.pub" "$k" || continue
        line="$k=$REPLY"
      fi
      pairs+=("$line")
      resolved[$k]=1
      # A value that is the same for every item reaches the command's environment.
      if [[ ${_HP_S_NEED_FROM[n]} != *"{i}"* && $k != "$_HP_B_KEYNAME" && -z ${shared_seen[$k]+x} ]]; then
        shared+=("$line")
        shared_seen[$k]=1
      fi
    done
    for k in "${_HP_S_REQUIRES[@]}"; do
      [[ -n ${resolved[$k]+x} || -n ${_HP_CTX[$k]+x} ]] || missing+=("$k")
    done
    if ((${#missing[@]} > 0)); then
      _hp_step_missing "$ikey" "$start" "$ts" "$provides_json" "${missing[@]}"
      _hp_batch_save "$i"
      _hp_leave_critical
      continue
    fi
    pub="$_HP_RUN_DIR/ctx/$ikey.pub"
    dir="$_HP_RUN_DIR/work/out/$_HP_B_MAP/$i"
    needs_file="$bdir/needs/$i.env"
    if [[ -e $pub || -L $pub ]]; then : >"$pub" || _hp_die "cannot empty $pub"; fi
    [[ -d $dir ]] || newdirs+=("$dir")
    if ((${#pairs[@]} > 0)); then printf '%s\n' "${pairs[@]}" >"$needs_file"; else : >"$needs_file"; fi || _hp_die "cannot write $needs_file"
    listing+="$i"$'\t'"$_HP_ITEM"$'\t'"$pub"$'\t'"$dir"$'\t'"$needs_file"$'\n'
    run+=("$i")
    _hp_batch_save "$i"
  done
  ((${#run[@]} > 0)) || return 1
  # The items' output directories that do not exist yet, in one `mkdir` (at most 500 names a call).
  for ((n = 0; n < ${#newdirs[@]}; n += 500)); do
    mkdir -p -- "${newdirs[@]:n:500}" || _hp_die "cannot create the output directories of step $_HP_S_TEMPLATE under $_HP_RUN_DIR/work/out/$_HP_B_MAP"
  done

  printf '%s' "$listing" >"$list" || _hp_die "cannot write $list"
  : >"$report" || _hp_die "cannot create $report"
  _HP_B_RUNNING=("${run[@]}")
  _HP_B_RUN_KEY=$_HP_S_TEMPLATE
  _HP_B_RUN_SIG=$_HP_S_SIG
  _HP_B_RUN_START=$start
  _HP_B_RUN_TS=$ts
  _HP_B_RUN_COE=$_HP_S_COE
  _HP_B_RUN_LOG="$_HP_RUN_DIR/logs/$bname"
  _HP_B_REPORT=$report
  _HP_B_PROVIDES=("${_HP_S_PROVIDES[@]}")
  _HP_B_OUTPUTS=("${_HP_S_OUTPUTS[@]}")
  _HP_CUR_PROVIDES_JSON=$provides_json
  _HP_B_LIST=$list
  _HP_B_SHARED=("${shared[@]}")
  _hp_log "step $_HP_S_TEMPLATE: one command for ${#run[@]} item(s): ${run[*]}"
}

# Runs the batch command prepared by _hp_batch_prepare, in work/, with the needs shared by every item
# (_HP_B_SHARED) and the --env entries, then gives every listed item its state (_hp_batch_ingest). No
# locals here, nor in the functions that call it: the command would see their values in place of the
# context values of their names.
_HP_B_LIST=""
_HP_B_SHARED=()
_hp_batch_exec() {
  set -m
  (
    # A packed task's pipes are its wrapper's: a process the command leaves behind must not hold them.
    for _HP_PACK_FD in "${_HP_PACK_FDS[@]}"; do exec {_HP_PACK_FD}>&-; done
    cd -- "$_HP_RUN_DIR/work" || exit 126
    unset -v HPCPIPE_ITEM HPCPIPE_PUBLISH "$_HP_B_KEYNAME"
    ((${#_HP_B_SHARED[@]} == 0)) || export -- "${_HP_B_SHARED[@]}"
    export HPCPIPE_BATCH_ITEMS="$_HP_B_LIST" HPCPIPE_BATCH_REPORT="$_HP_B_REPORT"
    ((${#_HP_S_ENV[@]} == 0)) || export -- "${_HP_S_ENV[@]}"
    export -f hp_batch_report
    HPCPIPE_STEP=$_HP_S_TEMPLATE HPCPIPE_TASK=$_HP_B_TASK exec bash -c "$_HP_S_CMD"
  ) </dev/null >"$_HP_B_RUN_LOG.out" 2>"$_HP_B_RUN_LOG.err" &
  _HP_CHILD=$!
  set +m
  _HP_S_RC=0
  wait "$_HP_CHILD" || _HP_S_RC=$?
  _HP_CRITICAL=1
  _HP_CHILD=""
  _hp_await_own_signal
  _hp_batch_ingest "$_HP_S_RC" "" ""
  _HP_B_RUNNING=()
  _hp_leave_critical
}

# _hp_batch_ingest EXIT_CODE ERROR REASON: turns the report into the state of every running item.
# Reported ok: a success when its outputs and provides are there; reported failed: failed with its
# message; not reported: failed, with ERROR (a signal) or as "not reported". The first line of an item wins.
_hp_batch_ingest() {
  local rc=$1 killed=$2 reason=$3 line idx rest status msg bad=0 i ikey k
  local -A rstatus=() rmsg=() running=()
  for i in "${_HP_B_RUNNING[@]}"; do running[$i]=1; done
  while IFS= read -r line || [[ -n $line ]]; do
    [[ -z $line ]] && continue
    idx=${line%%$'\t'*}
    rest=${line#*$'\t'}
    [[ $line == *$'\t'* ]] || rest=""
    status=${rest%%$'\t'*}
    msg=""
    [[ $rest == *$'\t'* ]] && msg=${rest#*$'\t'}
    status=${status%$'\r'}
    if [[ ! $idx =~ ^[0-9]{1,9}$ || ($status != ok && $status != failed) || -z ${running[$((10#$idx))]+x} ]]; then
      bad=$((bad + 1))
      continue
    fi
    idx=$((10#$idx))
    [[ -n ${rstatus[$idx]+x} ]] && continue
    rstatus[$idx]=$status
    rmsg[$idx]=${msg:0:1000}
  done < <(head -c "$_HP_B_REPORT_MAX_BYTES" -- "$_HP_B_REPORT" 2>/dev/null)
  ((bad == 0)) || _hp_log "step $_HP_B_RUN_KEY: ignored $bad report line(s) that are not 'INDEX<TAB>ok|failed[<TAB>MESSAGE]' for an item of this batch"
  local failure error outputs_json meta code=$rc
  [[ -n $killed ]] && code=null
  _hp_batch_pub_sizes
  _hp_states_bulk_begin
  for i in "${_HP_B_RUNNING[@]}"; do
    _hp_batch_select "$i"
    ikey=${_HP_B_RUN_KEY//"{i}"/$i}
    _hp_batch_outputs "$ikey"
    outputs_json=$REPLY
    failure=""
    error=""
    case ${rstatus[$i]-} in
      ok)
        if ((${#_HP_S_PROBLEMS[@]} > 0)); then
          failure=STEP_FAILED
          printf -v error '%s; ' "${_HP_S_PROBLEMS[@]}"
          error="validation failed: ${error%; }"
        fi
        ;;
      failed)
        failure=STEP_FAILED
        error="the batch command reported it failed${rmsg[$i]:+: ${rmsg[$i]}}"
        ;;
      *)
        failure=STEP_FAILED
        if [[ -n $killed ]]; then
          error=$killed
        else
          error="not reported by the batch command (it exited with status $rc)"
        fi
        ;;
    esac
    local reason_json=null
    [[ -n $reason ]] && reason_json="\"$reason\""
    local reported=false
    [[ -n ${rstatus[$i]-} ]] && reported=true
    _hp_meta_json "\"exit_code\":$code,\"reason\":$reason_json,\"batch\":{\"items\":${#_HP_B_RUNNING[@]},\"reported\":$reported}"
    meta=$REPLY
    if [[ -z $failure ]]; then
      _hp_state_json "$ikey" "$_HP_B_RUN_SIG" "$_HP_B_RUN_START" "$_HP_B_RUN_TS" true null null "$_HP_CUR_PROVIDES_JSON" "$outputs_json" "$meta" "$code"
    else
      _hp_json_str "$error"
      _hp_state_json "$ikey" "$_HP_B_RUN_SIG" "$_HP_B_RUN_START" "$_HP_B_RUN_TS" false "\"$failure\"" "$REPLY" "$_HP_CUR_PROVIDES_JSON" \
        "$outputs_json" "$meta" "$code"
    fi
    # Each item's logs are the batch command's (hard links; copies where links fail; an empty log of a
    # command that has exited is an empty file, which needs no process).
    for k in out err; do
      if [[ -z $killed && ! -s $_HP_B_RUN_LOG.$k ]]; then
        : >"$_HP_RUN_DIR/logs/$ikey.$k"
      else
        ln -f -- "$_HP_B_RUN_LOG.$k" "$_HP_RUN_DIR/logs/$ikey.$k" 2>/dev/null || cp -f -- "$_HP_B_RUN_LOG.$k" "$_HP_RUN_DIR/logs/$ikey.$k" 2>/dev/null
      fi
    done
    _hp_step_done "$ikey" "$_HP_B_RUN_COE" "$failure" "$error" "$REPLY"
    _hp_batch_save "$i"
  done
  _hp_states_bulk_end
}

# _HP_B_PUBSIZE[<key>.pub] := the size in bytes of every running item's published-values file, from
# ONE `wc -c` for the whole batch (an item whose file is missing has no entry).
declare -A _HP_B_PUBSIZE=()
_hp_batch_pub_sizes() {
  local i size name
  local -a names=()
  _HP_B_PUBSIZE=()
  for i in "${_HP_B_RUNNING[@]}"; do names+=("${_HP_B_RUN_KEY//"{i}"/$i}.pub"); done
  ((${#names[@]} > 0)) || return 0
  # Names are step keys ([A-Za-z0-9_.-]): `wc` prints them as they are, one "SIZE NAME" line each (and a
  # total, which matches no name); they reach it on stdin, so no argument list can grow too long.
  while read -r size name; do
    [[ $size =~ ^[0-9]+$ ]] && _HP_B_PUBSIZE[$name]=$size
  done < <(cd -- "$_HP_RUN_DIR/ctx" 2>/dev/null && printf '%s\0' "${names[@]}" | wc -c --files0-from=- 2>/dev/null)
}

# REPLY := the outputs JSON of the current item of the running batch step (step key KEY), checked as in
# hp_step (_HP_S_FILES, _HP_S_PROBLEMS); the size of its published values is from _hp_batch_pub_sizes.
_hp_batch_outputs() {
  local key=$1 published
  _HP_S_PROBLEMS=()
  _hp_step_files "${_HP_B_OUTPUTS[@]}"
  _hp_step_published "$_HP_RUN_DIR/ctx/$key.pub" "${_HP_B_PUBSIZE[$key.pub]-0}" "${_HP_B_PROVIDES[@]}"
  published=$REPLY
  _hp_json_array "${_HP_S_FILES[@]}"
  REPLY="{\"published\":{$published},\"files\":$REPLY}"
}

# A signal arrived in a map task with batch steps: a running batch command's items get their states
# (reported ones as reported, the others killed), and every other item with an open unit gets a failed
# unit state; the item whose per-item step is running is left to _hp_handle_signal.
_hp_batch_signal() {
  local error=$1 reason=$2 cur="" i
  if [[ -n $_HP_CUR_KEY ]]; then
    # shellcheck disable=SC2031 # the selected item's index, set by _hp_batch_select in this shell
    cur=$HPCPIPE_TASK
    _hp_batch_save "$cur"
  fi
  if ((${#_HP_B_RUNNING[@]} > 0)); then
    _hp_batch_ingest "" "$error" "$reason"
    _HP_B_RUNNING=()
  fi
  for i in "${_HP_B_IDX[@]}"; do
    [[ $i == "$cur" ]] && continue
    _hp_batch_select "$i"
    if [[ -z $_HP_UNIT_KEY ]] || ((_HP_UNIT_SKIP)); then continue; fi
    local members="\"reason\":\"$reason\""
    if [[ -n $_HP_UNIT_FAILED_STEP ]]; then
      _hp_json_str "$_HP_UNIT_FAILED_STEP: $_HP_UNIT_ERROR"
      local error_json=$REPLY
      _hp_json_str "$_HP_UNIT_FAILED_STEP"
      members+=",\"failed_step\":$REPLY"
    else
      _hp_json_str "$_HP_UNIT_KEY: $error"
      local error_json=$REPLY
    fi
    _hp_meta_json "$members"
    _hp_state_json "$_HP_UNIT_KEY" "$_HP_UNIT_SIG" "$_HP_UNIT_START" "$_HP_UNIT_TS" false "\"${_HP_UNIT_FAILURE:-STEP_FAILED}\"" \
      "$error_json" '[]' '{}' "$REPLY" null
    _hp_write_state "$_HP_UNIT_KEY" "$REPLY"
    _HP_UNIT_KEY=""
    _hp_batch_save "$i"
  done
  if [[ -n $cur ]]; then
    _hp_batch_select "$cur"
  else
    _HP_UNIT_KEY=""
  fi
}
