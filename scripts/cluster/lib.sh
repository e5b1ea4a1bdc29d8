# shellcheck shell=bash
# Shared helpers for up.sh and down.sh (sourced, never run on its own).
# Callers set `set -euo pipefail` themselves.

# Everything the test cluster owns outside /etc lives here.
STATE_DIR="${HPCPIPE_TESTCLUSTER_DIR:-/var/lib/hpcpipe-testcluster}"
PID_DIR="$STATE_DIR/pids"
LOG_DIR="$STATE_DIR/logs"
LOCK_FILE="$STATE_DIR/cluster.lock"
# shellcheck disable=SC2034 # used by up.sh and down.sh
CONNECTION_FILE="$STATE_DIR/connection.json"
QUIET=0

# Daemons in start order; down.sh stops them in reverse.
# shellcheck disable=SC2034 # used by down.sh
DAEMONS=(munged mariadb slurmdbd slurmctld slurmd sshd)

# The pid file each daemon writes itself (used to find instances we did not start).
daemon_pidfile() {
  case "$1" in
    munged) echo /run/munge/munged.pid ;;
    mariadb) echo /run/mysqld/mysqld.pid ;;
    slurmdbd) echo /run/slurmdbd.pid ;;
    slurmctld) echo /run/slurmctld.pid ;;
    slurmd) echo /run/slurmd.pid ;;
    sshd) echo "$STATE_DIR/sshd.pid" ;;
  esac
}

log() {
  if [[ "$QUIET" != 1 ]]; then printf '[cluster] %s\n' "$*" >&2; fi
}

die() {
  printf '[cluster] ERROR: %s\n' "$*" >&2
  exit 1
}

# Print the last lines of each existing log file, so a timeout explains itself.
show_logs() {
  local file
  for file in "$@"; do
    if [[ -s "$file" ]]; then
      printf '[cluster] ---- last lines of %s ----\n' "$file" >&2
      tail -n 30 -- "$file" >&2 || true
    fi
  done
}

# The state dir must be a plain absolute path: it is written into JSON and sshd_config.
check_state_dir() {
  [[ "$STATE_DIR" == /* ]] || die "HPCPIPE_TESTCLUSTER_DIR must be an absolute path (got '$STATE_DIR')"
  [[ "$STATE_DIR" =~ ^[A-Za-z0-9_./-]+$ ]] ||
    die "HPCPIPE_TESTCLUSTER_DIR may only contain letters, digits, '_', '.', '/' and '-' (got '$STATE_DIR')"
}

# Take the cluster lock so concurrent up.sh/down.sh runs (e.g. two test runs) do not race.
# fd 9 is closed for every daemon we start (see start_daemon), so they never hold it.
take_lock() {
  install -d -m 0755 "$STATE_DIR" "$PID_DIR" "$LOG_DIR"
  exec 9>"$LOCK_FILE"
  if ! flock -n 9; then
    log "another up.sh/down.sh holds $LOCK_FILE; waiting (up to 15 min)"
    flock -w 900 9 || die "timed out waiting for $LOCK_FILE"
  fi
}

# True when PID exists and is not a zombie: PID 1 here reaps orphans late.
proc_alive() {
  local pid="$1" state
  [[ "$pid" =~ ^[1-9][0-9]*$ ]] || return 1
  state="$(awk '/^State:/ { print $2; exit }' "/proc/$pid/status" 2>/dev/null)" || return 1
  [[ -n "$state" && "$state" != Z && "$state" != X ]]
}

proc_exe() {
  readlink "/proc/$1/exe" 2>/dev/null || true
}

# Start time in clock ticks (field 22 of /proc/PID/stat): tells a reused pid apart.
proc_starttime() {
  local stat fields
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
  # The command name (field 2) may contain spaces; fields after its ')' start at field 3.
  stat="${stat##*) }"
  read -r -a fields <<<"$stat"
  printf '%s\n' "${fields[19]:-}"
}

# Print the pid recorded for daemon NAME when that process still runs the program we started.
recorded_pid() {
  local file="$PID_DIR/$1" pid exe start
  [[ -r "$file" ]] || return 1
  read -r pid exe start <"$file" || return 1
  proc_alive "$pid" || return 1
  [[ "$(proc_exe "$pid")" == "$exe" ]] || return 1
  [[ "$(proc_starttime "$pid")" == "$start" ]] || return 1
  printf '%s\n' "$pid"
}

record_pid() {
  local name="$1" pid="$2" exe="$3" start tmp
  start="$(proc_starttime "$pid")"
  tmp="$(mktemp "$PID_DIR/.$name.XXXXXX")"
  printf '%s %s %s\n' "$pid" "$exe" "$start" >"$tmp"
  mv -f -- "$tmp" "$PID_DIR/$name"
}

# Send TERM, wait up to TIMEOUT seconds, then KILL: returns once PID is gone or a zombie.
stop_pid() {
  local pid="$1" what="$2" timeout="${3:-30}" i
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < timeout * 10; i++)); do
    proc_alive "$pid" || return 0
    sleep 0.1
  done
  log "$what (pid $pid) ignored TERM for ${timeout}s; sending KILL"
  kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    proc_alive "$pid" || return 0
    sleep 0.1
  done
  die "$what (pid $pid) did not exit after KILL"
}
