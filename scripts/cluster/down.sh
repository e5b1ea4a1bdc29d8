#!/usr/bin/env bash
# Stop exactly the daemons scripts/cluster/up.sh started (by their recorded pids),
# leaving packages, configuration, keys and data in place. Idempotent.
set -euo pipefail

SCRIPT_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$SCRIPT_DIR/lib.sh"

while [[ $# -gt 0 ]]; do
  case "$1" in
    --quiet) QUIET=1; shift ;;
    -h | --help)
      echo "Usage: down.sh [--quiet]   (stops the daemons up.sh started; HPCPIPE_TESTCLUSTER_DIR selects the state dir)"
      exit 0
      ;;
    *) die "unknown argument: $1" ;;
  esac
done

[[ "$(id -u)" == 0 ]] || die "down.sh needs root (the daemons up.sh started run as root, slurm, munge and mysql)"
check_state_dir
if [[ ! -d "$PID_DIR" ]]; then
  log "nothing to stop: $PID_DIR does not exist"
  exit 0
fi
take_lock

# The facts describe a running cluster; once it stops they no longer hold.
rm -f -- "$CONNECTION_FILE"

stopped=0
for ((i = ${#DAEMONS[@]} - 1; i >= 0; i--)); do
  name="${DAEMONS[$i]}"
  [[ -e "$PID_DIR/$name" ]] || continue
  # recorded_pid checks the pid still runs the same program since the same start time.
  if pid="$(recorded_pid "$name")"; then
    log "stopping $name (pid $pid)"
    stop_pid "$pid" "$name" 60
    stopped=$((stopped + 1))
  else
    log "$name is not running (stale record removed)"
  fi
  rm -f -- "$PID_DIR/$name"
  # A stale daemon pid file misleads others: Debian's slurmctld prerm then runs scancel and fails.
  pidfile="$(daemon_pidfile "$name")"
  if [[ -r "$pidfile" ]]; then
    read -r filepid <"$pidfile" || filepid=""
    proc_alive "$filepid" || rm -f -- "$pidfile"
  fi
done
# The two-factor test sshd (otp-sshd.sh), when it was started.
if [[ -s "$STATE_DIR/otp/sshd.pid" ]]; then bash "$SCRIPT_DIR/otp-sshd.sh" --stop || log "could not stop the otp sshd"; fi
log "stopped $stopped daemon(s); packages, config and keys are left in place"
