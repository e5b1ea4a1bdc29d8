# shellcheck shell=bash
# hpcpipe retry controller (scripts/retry.sh), sourced by a retry controller job (templates/retry.hbs).
#
# A controller runs `afterany` one job of the run (attempt 1: the plan's own job; later: a retry of it).
# It reads how each task ended (scontrol for SLURM's state, node and requeues; the state files the job wrote
# for exit codes and time limits), then either
#  - resubmits the tasks whose failure is retryable and whose attempts are not used up, as a remapped array
#    (HPCPIPE_TASK_MAP: task id i runs logical task i of the list, the wrapper's one index map), with time or
#    memory escalated (bounded by the partition's limits) and --exclude of nodes that failed, never every
#    node of the partition; submits the next controller `afterany` that retry; moves every pending job of
#    the run that waits `afterok` on this controller onto the next one (scontrol update); ends ok;
#  - or ends the chain: ok when every task's last attempt succeeded, else failed, so that SLURM cancels the
#    jobs waiting on it (--kill-on-invalid-dep=yes) and the run fails as without retries.
# Records (atomic: temp file, then mv), read by the client: retries/<job>.<attempt>.json for each retry,
# retries/<job>.end.json at the end. Its own bookkeeping: retries/<job>.used (task, attempts used) and
# retries/<job>.failed (tasks failed for good). Earlier attempts' states and logs are copied to
# attempts/<attempt>/{states,logs}/ before a retry overwrites them: per-key files, and the pack files
# (states/<map>.items-<first>-<last>.jsonl, with the complete lines of a killed attempt's slot files) and
# slot logs (logs/<map>.items-<first>-<last>.s<slot>.out|.err) of packed map tasks.
#
# Test-only hook: a file retries/fake-verdicts with lines "JOB ATTEMPT TASK VERDICT" makes the controller
# take VERDICT (e.g. NODE_FAIL) for that logical task of that attempt instead of what SLURM says; the
# task's node stays the one SLURM reports. It fakes node faults without taking a node down.
# Needs bash >= 4.2, coreutils, sbatch, scontrol, squeue, sinfo.

_hr_log() {
  printf 'hpcpipe-retry: %s\n' "$*" >&2
}

_hr_die() {
  _hr_log "error: $*"
  exit 1
}

# What this controller submitted so far: cancelled when it is stopped half-way (hpcpipe cancel, a time limit),
# so that no retry outlives a cancelled run unrecorded.
_HR_SUBMITTED=()
_hr_stopped() {
  trap '' TERM INT HUP USR1
  if ((${#_HR_SUBMITTED[@]} > 0)); then scancel "${_HR_SUBMITTED[@]}" 2>/dev/null; fi
  _hr_log "stopped by SIG$1: cancelled the ${#_HR_SUBMITTED[@]} job(s) it had submitted"
  exit 1
}

# _hr_job_lines ID: REPLY := one line per task of job ID as `scontrol show job -o` prints them; from accounting
# (sacct) when slurmctld no longer holds the job (the controller waited in the queue past MinJobAge).
_hr_job_lines() {
  local out line id state ec nl
  if out=$(scontrol show job -o "$1" 2>&1); then
    REPLY=$out
    return 0
  fi
  _hr_log "scontrol show job $1 failed ($out); asking sacct"
  out=$(sacct -j "$1" -X -n -P -o JobID,State,ExitCode,NodeList 2>&1) || _hr_die "neither scontrol nor sacct knows SLURM job $1: $out"
  REPLY=""
  while IFS='|' read -r id state ec nl; do
    state=${state%% *}
    if [[ $id =~ ^[0-9]+_([0-9]+)$ ]]; then
      REPLY+="JobId=$id ArrayTaskId=${BASH_REMATCH[1]} JobState=$state Restarts=0 ExitCode=$ec NodeList=$nl"$'\n'
    elif [[ $id =~ ^[0-9]+$ ]]; then
      REPLY+="JobId=$id JobState=$state Restarts=0 ExitCode=$ec NodeList=$nl"$'\n'
    fi
  done <<<"$out"
}

# _hr_write FILE TEXT: atomically (temp file in the same directory, then mv).
_hr_write() {
  local tmp="$1.tmp.$$"
  if ! { printf '%s\n' "$2" >"$tmp" && mv -f -- "$tmp" "$1"; }; then
    rm -f -- "$tmp"
    return 1
  fi
}

# _hr_json_str TEXT: REPLY := TEXT as a JSON string (the texts here are plain: names, reasons, numbers).
_hr_json_str() {
  local s=${1//\\/\\\\}
  s=${s//\"/\\\"}
  s=${s//[$'\001'-$'\037']/ }
  REPLY="\"$s\""
}

# _hr_retryable VERDICT ON: the verdict ("exit N", TIMEOUT, NODE_FAIL...) is one retry_on names (ALL: any failure but a cancel).
_hr_retryable() {
  local verdict=$1 on=",$2," what
  case $verdict in
    "exit "*) what=${verdict#exit } ;;
    TIMEOUT | OUT_OF_MEMORY | NODE_FAIL | PREEMPTED) what=$verdict ;;
    *) return 1 ;;
  esac
  [[ $on == ",ALL," || $on == *",$what,"* ]]
}

# hp_retry_control ARGS: see the header. The compiled arguments come first; the chain's (--watch,
# --attempt, --watch-map, --cur-time-s, --cur-mem-mb, --exclude) follow and are set by the submit script
# or by the controller before. Its phases below share its variables (bash's dynamic scope).
hp_retry_control() {
  local run_id="" job="" self_id="" self="" script="" name="" retries=0 on=ALL tf=0 mf=0 time_s=0 mem_mb=0
  local max_time_s=0 max_mem_mb=0 partition="" per_task=1 is_array=0 throttle=0 offset=0 task_map=""
  local watch="" attempt=1 watch_map="" cur_time_s="" cur_mem_mb="" exclude="" me=""
  declare -A st=() node=() restarts=() exitc=() failc=() keys=() packs=() verdict=() used=()
  local -a again=()
  local failed_now="" base=0 timed=0 oom=0 new_nodes="" next=0 list="" rid="" cid="" t
  _hr_setup "$@"
  _hr_read_slurm
  _hr_read_states
  _hr_judge
  _hr_count_attempts
  ((${#again[@]} > 0)) || _hr_end_chain
  _hr_escalate
  _hr_exclude_nodes
  _hr_resubmit
  _hr_write_record
  _hr_move_dependants
  _hr_log "job $job: attempt $next of tasks $list is SLURM job $rid, its controller $cid (${#again[@]} task(s): $(for t in "${again[@]}"; do printf '%s=%s ' "$t" "${verdict[$t]}"; done))"
  exit 0
}

# Parses and checks the arguments, enters the run directory, traps signals, drops SLURM variables.
_hr_setup() {
  while (($# >= 2)); do
    case $1 in
      --run-id) run_id=$2 ;;
      --job) job=$2 ;;
      --self-id) self_id=$2 ;;
      --self) self=$2 ;;
      --script) script=$2 ;;
      --name) name=$2 ;;
      --retries) retries=$2 ;;
      --on) on=$2 ;;
      --time-factor) tf=$2 ;;
      --mem-factor) mf=$2 ;;
      --time-s) time_s=$2 ;;
      --mem-mb) mem_mb=$2 ;;
      --max-time-s) max_time_s=$2 ;;
      --max-mem-mb) max_mem_mb=$2 ;;
      --partition) partition=$2 ;;
      --items-per-task) per_task=$2 ;;
      --is-array) is_array=$2 ;;
      --throttle) throttle=$2 ;;
      --offset) offset=$2 ;;
      --task-map) task_map=$2 ;;
      --watch) watch=$2 ;;
      --attempt) attempt=$2 ;;
      --watch-map) watch_map=$2 ;;
      --cur-time-s) cur_time_s=$2 ;;
      --cur-mem-mb) cur_mem_mb=$2 ;;
      --exclude) exclude=$2 ;;
      *) _hr_die "unknown argument '$1'" ;;
    esac
    shift 2
  done
  (($# == 0)) || _hr_die "unexpected argument '$1'"
  local n
  for n in "$retries" "$tf" "$mf" "$time_s" "$mem_mb" "$max_time_s" "$max_mem_mb" "$per_task" "$is_array" "$throttle" "$offset" "$attempt" "${cur_time_s:-0}" "${cur_mem_mb:-0}"; do
    [[ $n =~ ^[0-9]{1,12}$ ]] || _hr_die "expected a whole number, got '$n'"
  done
  [[ $watch =~ ^[0-9]+$ ]] || _hr_die "no job to watch (--watch '$watch')"
  [[ $job =~ ^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$ && $self_id =~ ^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$ ]] || _hr_die "bad job id"
  [[ $task_map =~ ^([0-9]+(,[0-9]+)*)?$ && $watch_map =~ ^([0-9]+(,[0-9]+)*)?$ ]] || _hr_die "bad task map"
  [[ $exclude =~ ^([A-Za-z0-9_.-]+(,[A-Za-z0-9_.-]+)*)?$ ]] || _hr_die "bad exclude list '$exclude'"
  ((per_task >= 1)) || per_task=1
  cur_time_s=${cur_time_s:-$time_s}
  cur_mem_mb=${cur_mem_mb:-$mem_mb}
  [[ -n ${HPCPIPE_RUN_DIR:-} ]] || _hr_die "HPCPIPE_RUN_DIR is not set"
  cd -- "$HPCPIPE_RUN_DIR" || _hr_die "cannot enter the run directory $HPCPIPE_RUN_DIR"
  mkdir -p retries || _hr_die "cannot create $HPCPIPE_RUN_DIR/retries"
  trap '_hr_stopped TERM' TERM
  trap '_hr_stopped INT' INT
  trap '_hr_stopped HUP' HUP
  me=${SLURM_JOB_ID:-}
  [[ $me =~ ^[0-9]+$ ]] || _hr_die "SLURM_JOB_ID is not set: a controller runs as a SLURM job"
  # This job's own SLURM variables must not reach the jobs it submits (sbatch passes the environment on).
  local v
  for v in $(compgen -e); do [[ $v == SLURM_* && $v != SLURM_CONF ]] && unset "$v"; done
  _hr_log "job $job, attempt $attempt (SLURM job $watch): reading how its tasks ended"
}

# SLURM's view: state, node and requeues of every task of the watched job.
_hr_read_slurm() {
  local out line tid t state nl rs ec
  local -a first_map=() this_map=()
  [[ -z $task_map ]] || IFS=, read -ra first_map <<<"$task_map"
  [[ -z $watch_map ]] || IFS=, read -ra this_map <<<"$watch_map"
  _hr_job_lines "$watch"
  out=$REPLY
  while IFS= read -r line; do
    [[ $line == *JobState=* ]] || continue
    tid=0
    if ((is_array)); then
      [[ $line =~ (^|[[:space:]])ArrayTaskId=([0-9]+)([[:space:]]|$) ]] || continue
      tid=${BASH_REMATCH[2]}
    fi
    if ((attempt > 1)); then
      t=${this_map[10#$tid]:-}
    elif ((!is_array)); then
      t=0
    elif ((${#first_map[@]} > 0)); then
      t=${first_map[10#$tid]:-}
    else
      t=$((10#$tid + offset))
    fi
    [[ -n $t ]] || _hr_die "SLURM job $watch: array task $tid has no logical task"
    state=UNKNOWN nl="" rs=0 ec=""
    [[ $line =~ (^|[[:space:]])JobState=([A-Z_]+) ]] && state=${BASH_REMATCH[2]}
    [[ $line =~ (^|[[:space:]])NodeList=([^[:space:]]+) ]] && nl=${BASH_REMATCH[2]}
    [[ $line =~ (^|[[:space:]])Restarts=([0-9]+) ]] && rs=${BASH_REMATCH[2]}
    [[ $line =~ (^|[[:space:]])ExitCode=([0-9]+): ]] && ec=${BASH_REMATCH[2]}
    st[$t]=$state
    node[$t]=$nl
    restarts[$t]=$rs
    exitc[$t]=$ec
  done <<<"$out"
  ((${#st[@]} > 0)) || _hr_die "scontrol shows no task of SLURM job $watch"
}

# The states the watched job wrote: exit codes, time limits, and the keys (and packs) to keep. A state is
# a per-key file (states/<key>.json) or a line of a packed task's pack file (states/<base>.jsonl), or of
# the slot files a killed one left (states/.pack-<base>/s<slot>.jsonl); the same grep reads them all.
_hr_read_states() {
  local pat key item code rec file base line
  local -A seen=()
  if ((is_array)); then pat="\"array_job_id\":\"$watch\""; else pat="\"job_id\":\"$watch\""; fi
  while IFS= read -r rec; do
    file=${rec%%:*}
    line=${rec#*:}
    # The LAST "key" member: the outputs and meta objects before it may hold a member of that name.
    [[ $line == *',"key":"'* ]] || continue
    key=${line##*,\"key\":\"}
    key=${key%%\"*}
    [[ $key =~ ^[A-Za-z0-9_.-]+$ ]] || continue
    [[ $line =~ \"task\":([0-9]+)\} ]] || continue
    item=${BASH_REMATCH[1]}
    t=$((10#$item / per_task))
    ((per_task > 1)) || t=$((10#$item))
    if [[ $file == *.jsonl ]]; then
      base=${file#states/}
      base=${base%.jsonl}
      [[ $base == .pack-*/* ]] && base=${base#.pack-} && base=${base%%/*}
      if [[ -z ${seen["$t $base"]+x} ]]; then
        seen["$t $base"]=1
        packs[$t]+="$base "
      fi
    else
      keys[$t]+="$key "
    fi
    [[ $line == *'"success":false'* ]] || continue
    [[ -z ${failc[$t]:-} ]] || continue
    if [[ $line == *'"reason":"TIMEOUT"'* ]]; then
      failc[$t]=TIMEOUT
    elif [[ $line =~ \"exit_code\":([0-9]+),\"attempt\": ]]; then
      code=${BASH_REMATCH[1]}
      ((10#$code == 0)) || failc[$t]="exit $((10#$code))"
    fi
  done < <(find states -maxdepth 2 -type f \( -path 'states/.pack-*/s*.jsonl' -o \( ! -path 'states/*/*' \( -name '*.json' -o -name '*.jsonl' \) \) \) \
    -exec grep -HF -- "$pat" {} + 2>/dev/null)
}

# The verdict of each task (the test-only hook may replace it).
_hr_judge() {
  for t in "${!st[@]}"; do
    case ${st[$t]} in
      COMPLETED) verdict[$t]=${failc[$t]:-ok} ;;
      TIMEOUT | OUT_OF_MEMORY | NODE_FAIL | PREEMPTED) verdict[$t]=${st[$t]} ;;
      BOOT_FAIL) verdict[$t]=NODE_FAIL ;;
      FAILED) verdict[$t]=${failc[$t]:-exit ${exitc[$t]:-1}} ;;
      *) verdict[$t]=${st[$t]} ;;
    esac
  done
  if [[ -f retries/fake-verdicts ]]; then
    local fj fa ft fv
    while read -r fj fa ft fv _; do
      [[ $fj == "$job" && $fa == "$attempt" && -n ${st[$ft]+x} && -n $fv ]] || continue
      _hr_log "test hook: task $ft of attempt $attempt taken as $fv"
      verdict[$ft]=$fv
    done <retries/fake-verdicts
  fi
}

# Attempts used (SLURM's own requeues count), and what to retry.
_hr_count_attempts() {
  local u
  if [[ -f retries/$job.used ]]; then
    while read -r t u; do [[ $t =~ ^[0-9]+$ && $u =~ ^[0-9]+$ ]] && used[$t]=$u; done <"retries/$job.used"
  fi
  local text="" nd
  for t in $(printf '%s\n' "${!st[@]}" | sort -n); do
    used[$t]=$((${used[$t]:-0} + 1 + ${restarts[$t]:-0}))
    [[ ${verdict[$t]} == ok ]] && continue
    if ! _hr_retryable "${verdict[$t]}" "$on"; then
      failed_now+="$t ${verdict[$t]} (not retried)"$'\n'
    elif ((used[$t] > retries)); then
      failed_now+="$t ${verdict[$t]} (retries used up after ${used[$t]} attempts)"$'\n'
    else
      again+=("$t")
      ((used[$t] > base)) && base=${used[$t]}
      [[ ${verdict[$t]} == TIMEOUT ]] && timed=1
      [[ ${verdict[$t]} == OUT_OF_MEMORY ]] && oom=1
      if [[ ${verdict[$t]} == NODE_FAIL && -n ${node[$t]} && ${node[$t]} != "(null)" ]]; then
        # A node list may be compressed (n[1-3]): one name each, and only plain host names.
        for nd in $(scontrol show hostnames "${node[$t]}" 2>/dev/null || printf '%s\n' "${node[$t]}"); do
          [[ $nd =~ ^[A-Za-z0-9_.-]{1,128}$ ]] && new_nodes+="$nd,"
        done
      fi
    fi
  done
  text=""
  for t in "${!used[@]}"; do text+="$t ${used[$t]}"$'\n'; done
  _hr_write "retries/$job.used" "${text%$'\n'}" || _hr_die "cannot write retries/$job.used"
  if [[ -n $failed_now ]]; then
    printf '%s' "$failed_now" >>"retries/$job.failed" || _hr_die "cannot write retries/$job.failed"
  fi
}

# Nothing to retry: the chain ends, ok when no task failed for good.
_hr_end_chain() {
  local ok=true members="" reason
  if [[ -s retries/$job.failed ]]; then
    ok=false
    while read -r t reason; do
      _hr_json_str "$reason"
      members+="${members:+,}\"$t\":$REPLY"
    done <"retries/$job.failed"
  fi
  _hr_write "retries/$job.end.json" "{\"job\":\"$job\",\"attempts\":$attempt,\"ok\":$ok,\"by\":\"$me\",\"failed\":{$members}}" ||
    _hr_die "cannot write retries/$job.end.json"
  if [[ $ok == true ]]; then
    _hr_log "job $job: every task succeeded (attempt $attempt); the jobs after it run"
    exit 0
  fi
  _hr_log "job $job: tasks failed for good:"$'\n'"$(<"retries/$job.failed")"
  exit 1
}

# Escalation, bounded by the partition's limits.
_hr_escalate() {
  if ((timed && tf > 0 && cur_time_s > 0)); then
    cur_time_s=$(((cur_time_s * tf + 999) / 1000))
    cur_time_s=$(((cur_time_s + 59) / 60 * 60))
    ((max_time_s > 0 && cur_time_s > max_time_s)) && cur_time_s=$max_time_s
  fi
  if ((oom && mf > 0 && cur_mem_mb > 0)); then
    cur_mem_mb=$(((cur_mem_mb * mf + 999) / 1000))
    ((max_mem_mb > 0 && cur_mem_mb > max_mem_mb)) && cur_mem_mb=$max_mem_mb
  fi
}

# Nodes where a task failed on a node fault, never every node of the partition.
_hr_exclude_nodes() {
  local nd
  if [[ -n $new_nodes ]]; then
    local all candidate=""
    local -A seen=()
    for nd in ${exclude//,/ } ${new_nodes//,/ }; do
      [[ -n $nd && -z ${seen[$nd]+x} ]] || continue
      seen[$nd]=1
      candidate+="${candidate:+,}$nd"
    done
    if all=$(sinfo -h -N -o '%N' ${partition:+-p "$partition"} 2>/dev/null | sort -u) && [[ -n $all ]]; then
      local left=0
      while IFS= read -r nd; do [[ -n ${seen[$nd]+x} ]] || left=$((left + 1)); done <<<"$all"
      if ((left > 0)); then
        exclude=$candidate
      else
        _hr_log "not excluding $candidate: that would leave no node of partition ${partition:-(default)}"
      fi
    else
      _hr_log "sinfo does not list the partition's nodes: excluding no new node"
    fi
  fi
}

# Keeps this attempt's states and logs, then resubmits the tasks and the next controller.
_hr_resubmit() {
  local k n t b f l
  local -a sfiles=() lfiles=() lines=()
  next=$((attempt + 1))
  list=$(printf '%s\n' "${again[@]}" | sort -n | paste -sd, -)
  mkdir -p "attempts/$attempt/states" "attempts/$attempt/logs" || _hr_die "cannot create attempts/$attempt"
  for t in "${again[@]}"; do
    for k in ${keys[$t]:-}; do
      [[ -f states/$k.json ]] && sfiles+=("states/$k.json")
      for n in out err; do [[ -f logs/$k.$n ]] && lfiles+=("logs/$k.$n"); done
    done
    for b in ${packs[$t]:-}; do
      for f in "logs/$b".s*.out "logs/$b".s*.err; do [[ -f $f ]] && lfiles+=("$f"); done
      # The pack file, then the complete lines a killed attempt left in its slot files (the last line of a key wins).
      [[ -f states/$b.jsonl || -d states/.pack-$b ]] || continue
      {
        [[ ! -f states/$b.jsonl ]] || cat -- "states/$b.jsonl"
        for f in "states/.pack-$b"/s*.jsonl; do
          [[ -f $f ]] || continue
          mapfile lines <"$f"
          for l in "${lines[@]}"; do [[ $l == *$'\n' ]] && printf '%s' "$l"; done
        done
      } >"attempts/$attempt/states/$b.jsonl" || _hr_log "cannot copy states/$b.jsonl into attempts/$attempt/states"
    done
  done
  # One cp per 500 files, not one per key.
  for ((n = 0; n < ${#sfiles[@]}; n += 500)); do cp -f -- "${sfiles[@]:n:500}" "attempts/$attempt/states/"; done
  for ((n = 0; n < ${#lfiles[@]}; n += 500)); do cp -f -- "${lfiles[@]:n:500}" "attempts/$attempt/logs/"; done
  local -a args=(--parsable "--comment=hpcpipe:$run_id")
  [[ -z $name ]] || args+=("--job-name=${name/#"hp-$job-"/"hp-$job.r$next-"}")
  if ((is_array)); then
    local count=${#again[@]} spec
    spec="0-$((count - 1))"
    ((count == 1)) && spec=0
    if ((throttle > 0)); then ((throttle < count)) && spec+="%$throttle" || spec+="%$count"; fi
    args+=("--array=$spec")
  fi
  ((cur_time_s > 0 && cur_time_s != time_s)) && args+=("--time=$(((cur_time_s + 59) / 60))")
  ((cur_mem_mb > 0 && cur_mem_mb != mem_mb)) && args+=("--mem=${cur_mem_mb}M")
  [[ -z $exclude ]] || args+=("--exclude=$exclude")
  rid=$(HPCPIPE_TASK_MAP=$list HPCPIPE_ATTEMPT_BASE=$base sbatch "${args[@]}" "$script" 2>&1) || _hr_die "sbatch of the retry failed: $rid"
  rid=${rid%%;*}
  [[ $rid =~ ^[0-9]+$ ]] || _hr_die "sbatch printed '$rid' instead of a job id"
  _HR_SUBMITTED+=("$rid")
  printf '%s\n' "$rid" >>logs/submitted-job-ids
  cid=$(sbatch --parsable "--comment=hpcpipe:$run_id" "--job-name=hp-$self_id.r$next-retry-$job" "--dependency=afterany:$rid" --kill-on-invalid-dep=yes \
    "$self" --watch "$rid" --attempt "$next" --watch-map "$list" --cur-time-s "$cur_time_s" --cur-mem-mb "$cur_mem_mb" --exclude "$exclude" 2>&1) ||
    { scancel "$rid"; _hr_die "sbatch of the next controller failed: $cid"; }
  cid=${cid%%;*}
  [[ $cid =~ ^[0-9]+$ ]] || { scancel "$rid"; _hr_die "sbatch printed '$cid' instead of a job id"; }
  _HR_SUBMITTED+=("$cid")
  printf '%s\n' "$cid" >>logs/submitted-job-ids
}

# The record the client reads.
_hr_write_record() {
  local reasons="" nodes_json="" t nd
  for t in "${again[@]}"; do
    _hr_json_str "${verdict[$t]}"
    reasons+="${reasons:+,}\"$t\":$REPLY"
  done
  for nd in ${exclude//,/ }; do nodes_json+="${nodes_json:+,}\"$nd\""; done
  _hr_write "retries/$job.$next.json" "{\"job\":\"$job\",\"attempt\":$next,\"by\":\"$me\",\"retry_job_id\":\"$rid\",\"controller_job_id\":\"$cid\",\"tasks\":[$list],\"reasons\":{$reasons},\"time_s\":$cur_time_s,\"mem_mb\":$cur_mem_mb,\"exclude\":[$nodes_json]}" ||
    { scancel "$rid" "$cid"; _hr_die "cannot write retries/$job.$next.json"; }
}

# The jobs waiting on this controller wait on the next one.
_hr_move_dependants() {
  local id comment deps out
  out=$(squeue --me -h -t PENDING -o '%A|%k|%E' 2>&1) || { scancel "$rid" "$cid"; _hr_die "squeue failed: $out"; }
  while IFS='|' read -r id comment deps; do
    [[ $comment == "hpcpipe:$run_id" && $id =~ ^[0-9]+$ ]] || continue
    [[ $deps =~ :$me(\(|,|:|$) ]] || continue
    while [[ $deps =~ \([^\)]*\) ]]; do deps=${deps/"${BASH_REMATCH[0]}"/}; done
    deps=$(sed -E "s/:$me([^0-9]|\$)/:$cid\\1/g" <<<"$deps")
    if ! out=$(scontrol update "JobId=$id" "Dependency=$deps" 2>&1); then
      scancel "$rid" "$cid"
      _hr_die "cannot move job $id onto the next controller: $out"
    fi
    _hr_log "job $id now waits on controller $cid ($deps)"
  done <<<"$out"
}
