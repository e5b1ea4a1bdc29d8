#!/usr/bin/env bash
# Start (or verify) hpcpipe's single-host SLURM test cluster: munged, MariaDB,
# slurmdbd, slurmctld, slurmd and a private sshd on 127.0.0.1, with an
# unprivileged test user. Idempotent: when everything is up it only verifies.
# Needs root on Debian (apt-get, dpkg). See scripts/cluster/README.md.
set -euo pipefail

SCRIPT_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$SCRIPT_DIR/lib.sh"
# The daemons started below keep this shell's working directory for their lifetime: start them
# from / so a caller's directory (a temp clone, a test's scratch dir) that is removed later is not
# theirs (slurmctld would hand a deleted cwd on, and jobs print "Unable to get current working directory").
cd /
# Nothing of the caller's temp directory either: .ci/run puts TMPDIR inside a mode-700 directory,
# which mysql (mariadb-install-db, mariadbd) and slurm cannot write.
unset TMPDIR TMP TEMP

PORT=2222
TEST_USER=hpctest
MAX_ARRAY_SIZE=1001
ACCOUNTING=on
CPUS=4
CLUSTER_NAME=localcluster
PARTITION=debug
PACKAGES=(munge slurm-wlm slurmdbd mariadb-server openssh-server openssh-client)
SLURM_CONF=/etc/slurm/slurm.conf
SLURMDBD_CONF=/etc/slurm/slurmdbd.conf
MARIADB_SOCKET=/run/mysqld/mysqld.sock
SLURM_LOG_DIR=/var/log/slurm
MANAGED_MARK='# Managed by hpcpipe scripts/cluster/up.sh'

usage() {
  cat <<'EOF'
Usage: up.sh [--port N] [--user NAME] [--max-array-size N] [--accounting on|off]
             [--cpus N] [--quiet]

Installs (if missing), configures and starts a single-host SLURM cluster with a
private sshd on 127.0.0.1, waits until a probe job submitted over ssh as the
test user has COMPLETED, and writes the connection facts to
$HPCPIPE_TESTCLUSTER_DIR/connection.json (default /var/lib/hpcpipe-testcluster).

  --port N              sshd port on 127.0.0.1 (default 2222)
  --user NAME           unprivileged test user (default hpctest)
  --max-array-size N    SLURM MaxArraySize (default 1001)
  --accounting on|off   slurmdbd + MariaDB accounting, so sacct works (default on)
  --cpus N              CPUs the node advertises (default 4, may exceed the host)
  --quiet               print only errors
EOF
}

# Read an option's value, refusing a missing one.
need_value() {
  [[ $# -ge 2 && -n "$2" ]] || die "option $1 needs a value (see --help)"
}

while [[ $# -gt 0 ]]; do
  case "$1" in
    --port) need_value "$@"; PORT="$2"; shift 2 ;;
    --user) need_value "$@"; TEST_USER="$2"; shift 2 ;;
    --max-array-size) need_value "$@"; MAX_ARRAY_SIZE="$2"; shift 2 ;;
    --accounting) need_value "$@"; ACCOUNTING="$2"; shift 2 ;;
    --cpus) need_value "$@"; CPUS="$2"; shift 2 ;;
    --quiet) QUIET=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done

# True when $1 is a decimal integer within [$2, $3].
int_in_range() {
  [[ "$1" =~ ^[0-9]{1,7}$ ]] || return 1
  ((10#$1 >= $2 && 10#$1 <= $3))
}

# Values end up in config files and JSON: accept only plain, bounded forms.
int_in_range "$PORT" 1024 65535 || die "--port must be 1024-65535 (got '$PORT')"
[[ "$TEST_USER" =~ ^[a-z_][a-z0-9_-]{0,30}$ && "$TEST_USER" != root ]] ||
  die "--user must be a plain lower-case user name other than root (got '$TEST_USER')"
int_in_range "$MAX_ARRAY_SIZE" 1 10000 ||
  die "--max-array-size must be 1-10000, the limit of the default MaxJobCount (got '$MAX_ARRAY_SIZE')"
[[ "$ACCOUNTING" == on || "$ACCOUNTING" == off ]] || die "--accounting must be on or off (got '$ACCOUNTING')"
int_in_range "$CPUS" 1 1024 || die "--cpus must be 1-1024 (got '$CPUS')"
# Normalise (no leading zeros) before the values reach config files and JSON.
PORT=$((10#$PORT)) MAX_ARRAY_SIZE=$((10#$MAX_ARRAY_SIZE)) CPUS=$((10#$CPUS))

# Refuse early, with what is needed, on anything but root on Debian/apt.
require_root_debian() {
  local missing=()
  [[ "$(id -u)" == 0 ]] || missing+=("root (it installs packages, writes /etc/slurm and starts daemons; run it with sudo)")
  command -v apt-get >/dev/null 2>&1 || missing+=("apt-get (Debian 12 or a Debian-based system)")
  command -v dpkg-query >/dev/null 2>&1 || missing+=("dpkg/dpkg-query (Debian 12 or a Debian-based system)")
  command -v setsid >/dev/null 2>&1 && command -v setpriv >/dev/null 2>&1 && command -v flock >/dev/null 2>&1 ||
    missing+=("util-linux (setsid, setpriv, flock)")
  if ((${#missing[@]})); then
    printf '[cluster] ERROR: the hpcpipe test cluster cannot be set up here. It needs:\n' >&2
    printf '[cluster]   - %s\n' "${missing[@]}" >&2
    printf '[cluster] It installs %s and runs them on 127.0.0.1.\n' "${PACKAGES[*]}" >&2
    exit 2
  fi
}

require_root_debian
check_state_dir
take_lock

# On failure, do not leave facts behind that describe a cluster we could not verify.
on_exit() {
  local rc=$?
  if ((rc != 0)); then rm -f -- "$CONNECTION_FILE"; fi
  exit "$rc"
}
trap on_exit EXIT

T0=$SECONDS
SSHD_CONFIG="$STATE_DIR/sshd_config"
HOST_KEY="$STATE_DIR/ssh_host_ed25519_key"
CLIENT_KEY="$STATE_DIR/id_ed25519"
KNOWN_HOSTS="$STATE_DIR/known_hosts"

# ---------------------------------------------------------------- packages

install_packages() {
  local pkg missing=()
  for pkg in "${PACKAGES[@]}"; do
    if [[ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)" != "install ok installed" ]]; then
      missing+=("$pkg")
    fi
  done
  ((${#missing[@]})) || return 0
  log "installing ${missing[*]} (apt-get, no recommends); output in $LOG_DIR/apt.log"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get update >"$LOG_DIR/apt.log" 2>&1 ||
    ! apt-get install -y --no-install-recommends "${missing[@]}" >>"$LOG_DIR/apt.log" 2>&1; then
    show_logs "$LOG_DIR/apt.log"
    die "apt-get could not install ${missing[*]}"
  fi
}

# ---------------------------------------------------------------- daemons

# The real executable of each daemon (Debian links some, e.g. slurmctld -> slurmctld-wlm).
daemon_exe() {
  local bin
  case "$1" in
    munged) bin=/usr/sbin/munged ;;
    mariadb) bin=/usr/sbin/mariadbd ;;
    slurmdbd) bin=/usr/sbin/slurmdbd ;;
    slurmctld) bin=/usr/sbin/slurmctld ;;
    slurmd) bin=/usr/sbin/slurmd ;;
    sshd) bin=/usr/sbin/sshd ;;
  esac
  readlink -f -- "$bin"
}

daemon_logs() {
  case "$1" in
    munged) echo /var/log/munge/munged.log ;;
    mariadb) echo "$LOG_DIR/mariadb.out" ;;
    slurmdbd) echo "$SLURM_LOG_DIR/slurmdbd.log" ;;
    slurmctld) echo "$SLURM_LOG_DIR/slurmctld.log" ;;
    slurmd) echo "$SLURM_LOG_DIR/slurmd.log" ;;
    sshd) echo "$LOG_DIR/sshd.log" ;;
  esac
}

# Print the pid of a live instance of daemon NAME: ours (recorded) or one found via its pid file.
running_pid() {
  local name="$1" pid="" pidfile
  if pid="$(recorded_pid "$name")"; then
    printf '%s\n' "$pid"
    return 0
  fi
  pidfile="$(daemon_pidfile "$name")"
  if [[ -r "$pidfile" ]]; then
    read -r pid <"$pidfile" || pid=""
    if proc_alive "$pid" && [[ "$(proc_exe "$pid")" == "$(daemon_exe "$name")" ]]; then
      printf '%s\n' "$pid"
      return 0
    fi
  fi
  return 1
}

# Start NAME as "$@" in the foreground of its own session, detached from our stdio and lock,
# and record its pid (setsid execs in place, so $! becomes the daemon itself).
start_daemon() {
  local name="$1" exe pid i
  shift
  exe="$(daemon_exe "$name")"
  # Stale pid files: slurmctld/slurmdbd run as slurm and cannot replace root-owned ones in /run.
  rm -f -- "$(daemon_pidfile "$name")" "$PID_DIR/$name"
  log "starting $name"
  # A clean environment, as systemd gives a service: nothing of the caller's (a TMPDIR inside a
  # mode-700 directory that mysql cannot write, as in .ci/run; a locale; credentials) leaks in.
  env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 setsid "$@" </dev/null >>"$LOG_DIR/$name.out" 2>&1 9>&- &
  pid=$!
  # Record before exec completes (start time survives exec), so a failed start is still ours to stop.
  record_pid "$name" "$pid" "$exe"
  for ((i = 0; i < 100; i++)); do
    if ! proc_alive "$pid"; then
      show_logs "$LOG_DIR/$name.out" "$(daemon_logs "$name")"
      die "$name exited right after start"
    fi
    [[ "$(proc_exe "$pid")" == "$exe" ]] && break
    sleep 0.05
  done
  [[ "$(proc_exe "$pid")" == "$exe" ]] || die "$name (pid $pid) never became $exe"
}

stop_daemon() {
  local name="$1" pid
  if pid="$(running_pid "$name")"; then
    log "stopping $name (pid $pid)"
    stop_pid "$pid" "$name" 30
  fi
  rm -f -- "$PID_DIR/$name"
}

# Poll CHECK (a function) every 0.2 s for up to TIMEOUT seconds; on timeout show LOGS and fail.
wait_for() {
  local timeout="$1" desc="$2" check="$3" deadline
  shift 3
  deadline=$((SECONDS + timeout))
  until "$check"; do
    if ((SECONDS >= deadline)); then
      show_logs "$@"
      die "timed out after ${timeout}s waiting for $desc"
    fi
    sleep 0.2
  done
}

# ---------------------------------------------------------------- config files

# Move SRC over DEST (same directory, atomic) only when the content differs.
# Returns 0 when DEST changed, 1 when it was already identical.
install_if_changed() {
  local src="$1" dest="$2" mode="$3" owner="$4"
  chmod "$mode" "$src"
  chown "$owner" "$src"
  if [[ -f "$dest" ]] && cmp -s -- "$src" "$dest"; then
    rm -f -- "$src"
    chmod "$mode" "$dest"
    chown "$owner" "$dest"
    return 1
  fi
  mv -f -- "$src" "$dest"
  return 0
}

# Never overwrite a SLURM config this script did not write (a real site's, say).
check_managed() {
  local file="$1"
  if [[ -f "$file" ]] && ! grep -qxF "$MANAGED_MARK" "$file"; then
    die "$file exists and was not written by this script; move it away to use the test cluster"
  fi
}

# Hardware as slurmd sees it; values above these drain the node unless config_overrides is set.
read_hardware() {
  local line kv
  local -a kvs
  line="$(slurmd -C 2>/dev/null | head -n 1)" || true
  read -r -a kvs <<<"$line"
  HW_CPUS="" HW_SOCKETS="" HW_CORES="" HW_THREADS="" HW_MEMORY=""
  for kv in "${kvs[@]}"; do
    case "$kv" in
      CPUs=*) HW_CPUS="${kv#*=}" ;;
      SocketsPerBoard=*) HW_SOCKETS="${kv#*=}" ;;
      CoresPerSocket=*) HW_CORES="${kv#*=}" ;;
      ThreadsPerCore=*) HW_THREADS="${kv#*=}" ;;
      RealMemory=*) HW_MEMORY="${kv#*=}" ;;
    esac
  done
  [[ "$HW_CPUS" =~ ^[0-9]+$ && "$HW_SOCKETS" =~ ^[0-9]+$ && "$HW_CORES" =~ ^[0-9]+$ &&
    "$HW_THREADS" =~ ^[0-9]+$ && "$HW_MEMORY" =~ ^[0-9]+$ ]] || die "could not parse 'slurmd -C' output: $line"
}

render_slurm_conf() {
  local node_line overrides=""
  if ((CPUS == HW_CPUS)); then
    node_line="CPUs=$HW_CPUS SocketsPerBoard=$HW_SOCKETS CoresPerSocket=$HW_CORES ThreadsPerCore=$HW_THREADS"
  else
    # Advertise CPUS cores (more array tasks at once than the host has); slurmd must accept it.
    overrides="SlurmdParameters=config_overrides"
    node_line="CPUs=$CPUS SocketsPerBoard=1 CoresPerSocket=$CPUS ThreadsPerCore=1"
  fi
  cat <<EOF
$MANAGED_MARK
# Single-host test cluster; rewritten on every run, do not edit by hand.
ClusterName=$CLUSTER_NAME
SlurmctldHost=$SHORT_HOST(127.0.0.1)
SlurmUser=slurm
SlurmdUser=root
SlurmctldPort=6817
SlurmdPort=6818
AuthType=auth/munge
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MailProg=/bin/true
MinJobAge=300
MaxArraySize=$MAX_ARRAY_SIZE
KillWait=5
OverTimeLimit=0
InactiveLimit=0
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=$(daemon_pidfile slurmctld)
SlurmdPidFile=$(daemon_pidfile slurmd)
SlurmctldLogFile=$SLURM_LOG_DIR/slurmctld.log
SlurmdLogFile=$SLURM_LOG_DIR/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
JobCompType=jobcomp/none
EOF
  if [[ "$ACCOUNTING" == on ]]; then
    cat <<EOF
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=6819
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
EOF
  else
    printf '%s\n' "AccountingStorageType=accounting_storage/none" "JobAcctGatherType=jobacct_gather/none"
  fi
  [[ -z "$overrides" ]] || printf '%s\n' "$overrides"
  cat <<EOF
NodeName=$SHORT_HOST NodeAddr=127.0.0.1 $node_line RealMemory=$HW_MEMORY State=UNKNOWN
PartitionName=$PARTITION Nodes=$SHORT_HOST Default=YES MaxTime=INFINITE State=UP
EOF
}

render_slurmdbd_conf() {
  # StoragePass is unset on purpose: MariaDB authenticates the slurm user by its unix socket peer.
  cat <<EOF
$MANAGED_MARK
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=6819
SlurmUser=slurm
LogFile=$SLURM_LOG_DIR/slurmdbd.log
PidFile=$(daemon_pidfile slurmdbd)
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StorageLoc=slurm_acct_db
EOF
}

render_sshd_config() {
  cat <<EOF
# hpcpipe test cluster's private sshd (not the system one); rewritten by up.sh.
Port $PORT
ListenAddress 127.0.0.1
HostKey $HOST_KEY
PidFile $(daemon_pidfile sshd)
AuthorizedKeysFile .ssh/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
AllowUsers $TEST_USER
UsePAM no
MaxSessions 50
MaxStartups 100:30:200
X11Forwarding no
PrintMotd no
Subsystem sftp internal-sftp
EOF
}

configure_host() {
  SHORT_HOST="$(uname -n)"
  SHORT_HOST="${SHORT_HOST%%.*}"
  [[ "$SHORT_HOST" =~ ^[A-Za-z0-9-]+$ ]] || die "unexpected host name '$SHORT_HOST'"
  # slurmctld and slurmd identify this node by its short name.
  if ! getent hosts "$SHORT_HOST" >/dev/null; then
    log "adding $SHORT_HOST to /etc/hosts"
    printf '127.0.0.1 %s\n' "$SHORT_HOST" >>/etc/hosts
  fi
  id slurm >/dev/null 2>&1 || die "user 'slurm' is missing (it comes with the slurm-wlm packages)"
  install -d -m 0755 -o slurm -g slurm /var/spool/slurmctld "$SLURM_LOG_DIR"
  install -d -m 0755 /var/spool/slurmd /etc/slurm
  install -d -m 0755 -o munge -g munge /run/munge
  install -d -m 0755 -o mysql -g mysql /run/mysqld
  install -d -m 0755 /run/sshd
}

write_configs() {
  local tmp
  SLURM_CONF_CHANGED=0 SLURMDBD_CONF_CHANGED=0
  check_managed "$SLURM_CONF"
  check_managed "$SLURMDBD_CONF"
  read_hardware
  ((CPUS >= HW_CPUS)) || log "note: advertising $CPUS CPUs, fewer than the host's $HW_CPUS"
  tmp="$(mktemp /etc/slurm/.slurm.conf.XXXXXX)"
  render_slurm_conf >"$tmp"
  if install_if_changed "$tmp" "$SLURM_CONF" 0644 root:root; then
    log "wrote $SLURM_CONF"
    SLURM_CONF_CHANGED=1
  fi
  tmp="$(mktemp /etc/slurm/.slurmdbd.conf.XXXXXX)"
  render_slurmdbd_conf >"$tmp"
  # slurmdbd refuses a config readable by others.
  if install_if_changed "$tmp" "$SLURMDBD_CONF" 0600 slurm:slurm; then
    log "wrote $SLURMDBD_CONF"
    SLURMDBD_CONF_CHANGED=1
  fi
}

# ---------------------------------------------------------------- munge, MariaDB, slurmdbd

munge_ok() { munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; }

start_munge() {
  if [[ ! -s /etc/munge/munge.key ]]; then
    # The munge package normally creates the key; recreate it if someone removed it.
    log "creating /etc/munge/munge.key"
    mungekey --create --keyfile=/etc/munge/munge.key
    chown munge:munge /etc/munge/munge.key
    chmod 0600 /etc/munge/munge.key
  fi
  if ! running_pid munged >/dev/null; then
    # munged insists on running as the owner of its key.
    start_daemon munged setpriv --reuid=munge --regid=munge --init-groups -- /usr/sbin/munged -F
  fi
  wait_for 20 "munged to answer" munge_ok "$LOG_DIR/munged.out" /var/log/munge/munged.log
}

mariadb_ok() { mariadb-admin --socket="$MARIADB_SOCKET" --connect-timeout=2 ping >/dev/null 2>&1; }

# MariaDB can die under slurmdbd; check it is alive and (re)start it when not.
start_mariadb() {
  if [[ ! -d /var/lib/mysql/mysql ]]; then
    log "initialising MariaDB's data directory"
    mariadb-install-db --user=mysql --datadir=/var/lib/mysql --skip-test-db >>"$LOG_DIR/mariadb.out" 2>&1 ||
      { show_logs "$LOG_DIR/mariadb.out"; die "mariadb-install-db failed"; }
  fi
  local pid
  if pid="$(running_pid mariadb)" && ! mariadb_ok; then
    # Give a starting server a moment before deciding it is hung.
    sleep 2
    if ! mariadb_ok; then
      log "MariaDB (pid $pid) does not answer; restarting it"
      stop_daemon mariadb
    fi
  fi
  if ! running_pid mariadb >/dev/null; then
    start_daemon mariadb "$(daemon_exe mariadb)" --user=mysql --skip-networking --socket="$MARIADB_SOCKET"
  fi
  wait_for 60 "MariaDB to answer on $MARIADB_SOCKET" mariadb_ok "$LOG_DIR/mariadb.out"
  # The slurm user logs in over the socket as itself: no password to keep anywhere.
  local sql="CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED VIA unix_socket;
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';"
  if ! mariadb --socket="$MARIADB_SOCKET" -u root -e "$sql" >>"$LOG_DIR/mariadb.out" 2>&1; then
    show_logs "$LOG_DIR/mariadb.out"
    die "could not create the slurm database and user in MariaDB"
  fi
}

slurmdbd_ok() { sacctmgr -n -P list cluster format=Cluster >/dev/null 2>&1; }

start_slurmdbd() {
  if ((SLURMDBD_CONF_CHANGED)); then stop_daemon slurmdbd; fi
  if ! running_pid slurmdbd >/dev/null; then
    start_daemon slurmdbd /usr/sbin/slurmdbd -D
  fi
  wait_for 60 "slurmdbd to answer sacctmgr" slurmdbd_ok "$LOG_DIR/slurmdbd.out" "$SLURM_LOG_DIR/slurmdbd.log"
}

# Make the cluster, an account and the test user known to slurmdbd, so their jobs are recorded.
register_accounting() {
  if ! sacctmgr -n -P list cluster format=Cluster | grep -qxF "$CLUSTER_NAME"; then
    log "registering cluster $CLUSTER_NAME in slurmdbd"
    sacctmgr -i add cluster "$CLUSTER_NAME" >/dev/null
  fi
  if ! sacctmgr -n -P list account hpcpipe format=Account | grep -qxF hpcpipe; then
    sacctmgr -i add account hpcpipe Cluster="$CLUSTER_NAME" Description=hpcpipe-tests Organization=hpcpipe >/dev/null
  fi
  if ! sacctmgr -n -P list user "$TEST_USER" format=User | grep -qxF "$TEST_USER"; then
    log "registering user $TEST_USER in slurmdbd"
    sacctmgr -i add user "$TEST_USER" Account=hpcpipe Cluster="$CLUSTER_NAME" >/dev/null
  fi
}

# ---------------------------------------------------------------- slurmctld, slurmd

slurmctld_ok() { scontrol ping 2>/dev/null | grep -q 'is UP'; }

# Node usable for jobs; a drained or down node (left from an earlier run) is resumed once.
NODE_RESUMED=0
node_ok() {
  local state
  state="$(sinfo -h -n "$SHORT_HOST" -o '%T' 2>/dev/null | head -n 1)" || return 1
  case "$state" in
    idle | mixed | allocated | completing) return 0 ;;
    drain* | down* | fail*)
      if ((NODE_RESUMED == 0)); then
        NODE_RESUMED=1
        log "node $SHORT_HOST is $state; resuming it"
        scontrol update NodeName="$SHORT_HOST" State=RESUME >/dev/null 2>&1 || true
      fi
      return 1
      ;;
    *) return 1 ;;
  esac
}

start_slurm() {
  if ((SLURM_CONF_CHANGED)); then
    stop_daemon slurmd
    stop_daemon slurmctld
  fi
  if ! running_pid slurmctld >/dev/null; then
    start_daemon slurmctld /usr/sbin/slurmctld -D
  fi
  wait_for 60 "slurmctld to answer 'scontrol ping'" slurmctld_ok "$LOG_DIR/slurmctld.out" "$SLURM_LOG_DIR/slurmctld.log"
  if ! running_pid slurmd >/dev/null; then
    start_daemon slurmd /usr/sbin/slurmd -D
  fi
  wait_for 60 "node $SHORT_HOST to become idle" node_ok "$LOG_DIR/slurmd.out" "$SLURM_LOG_DIR/slurmd.log" "$SLURM_LOG_DIR/slurmctld.log"
}

# ---------------------------------------------------------------- test user and sshd

setup_test_user() {
  local hash group
  if ! id -u "$TEST_USER" >/dev/null 2>&1; then
    log "creating user $TEST_USER"
    useradd --create-home --shell /bin/bash "$TEST_USER"
  fi
  # useradd leaves the account locked ('!'); with UsePAM no, sshd then refuses even keys.
  hash="$(getent shadow "$TEST_USER" | cut -d: -f2)"
  if [[ "$hash" == '!'* ]]; then usermod -p '*' "$TEST_USER"; fi
  group="$(id -gn "$TEST_USER")"
  USER_HOME="$(getent passwd "$TEST_USER" | cut -d: -f6)"
  [[ "$USER_HOME" =~ ^/[A-Za-z0-9_./-]+$ && -d "$USER_HOME" ]] || die "user $TEST_USER has no usable home ('$USER_HOME')"
  WORKDIR="$USER_HOME/hpcpipe-runs"
  install -d -m 0700 -o "$TEST_USER" -g "$group" "$USER_HOME/.ssh"
  install -d -m 0755 -o "$TEST_USER" -g "$group" "$WORKDIR"

  # A client key pair for root to log in as the test user (fresh per state dir, kept across runs).
  if [[ ! -s "$CLIENT_KEY" || ! -s "$CLIENT_KEY.pub" ]]; then
    rm -f -- "$CLIENT_KEY" "$CLIENT_KEY.pub"
    ssh-keygen -q -t ed25519 -N '' -C "hpcpipe-testcluster-client" -f "$CLIENT_KEY"
  fi
  chmod 0600 "$CLIENT_KEY"
  local tmp
  tmp="$(mktemp "$USER_HOME/.ssh/.authorized_keys.XXXXXX")"
  cat -- "$CLIENT_KEY.pub" >"$tmp"
  install_if_changed "$tmp" "$USER_HOME/.ssh/authorized_keys" 0600 "$TEST_USER:$group" || true
}

sshd_ok() { ssh_as_user true >/dev/null 2>&1; }

# Run a command as the test user through the private sshd, verifying its host key.
ssh_as_user() {
  ssh -F /dev/null -i "$CLIENT_KEY" -o IdentitiesOnly=yes -o BatchMode=yes \
    -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$KNOWN_HOSTS" -o GlobalKnownHostsFile=/dev/null \
    -o ConnectTimeout=10 -o LogLevel=ERROR -p "$PORT" "$TEST_USER@127.0.0.1" "$@"
}

start_sshd() {
  local tmp changed=0
  if [[ ! -s "$HOST_KEY" || ! -s "$HOST_KEY.pub" ]]; then
    rm -f -- "$HOST_KEY" "$HOST_KEY.pub"
    ssh-keygen -q -t ed25519 -N '' -C "hpcpipe-testcluster-host" -f "$HOST_KEY"
    changed=1
  fi
  tmp="$(mktemp "$STATE_DIR/.sshd_config.XXXXXX")"
  render_sshd_config >"$tmp"
  /usr/sbin/sshd -t -f "$tmp" >"$LOG_DIR/sshd-check.out" 2>&1 ||
    { show_logs "$LOG_DIR/sshd-check.out"; rm -f -- "$tmp"; die "sshd rejects the generated config"; }
  if install_if_changed "$tmp" "$SSHD_CONFIG" 0644 root:root; then changed=1; fi
  # known_hosts holds exactly this sshd's key for [127.0.0.1]:PORT.
  tmp="$(mktemp "$STATE_DIR/.known_hosts.XXXXXX")"
  printf '[127.0.0.1]:%s %s\n' "$PORT" "$(cut -d' ' -f1,2 -- "$HOST_KEY.pub")" >"$tmp"
  install_if_changed "$tmp" "$KNOWN_HOSTS" 0644 root:root || true
  HOST_KEY_FINGERPRINT="$(ssh-keygen -l -E sha256 -f "$HOST_KEY.pub" | cut -d' ' -f2)"
  [[ "$HOST_KEY_FINGERPRINT" =~ ^SHA256:[A-Za-z0-9+/=]+$ ]] || die "could not read the host key fingerprint"

  if ((changed)); then stop_daemon sshd; fi
  if ! running_pid sshd >/dev/null; then
    # sshd re-executes itself, so it must be started by absolute path.
    start_daemon sshd /usr/sbin/sshd -D -f "$SSHD_CONFIG" -E "$LOG_DIR/sshd.log"
  fi
  wait_for 20 "ssh $TEST_USER@127.0.0.1 -p $PORT to log in" sshd_ok "$LOG_DIR/sshd.out" "$LOG_DIR/sshd.log"
}

# ---------------------------------------------------------------- probe and facts

PROBE_ID=""
submit_probe() {
  local out
  out="$(ssh_as_user sbatch --parsable --job-name=hpcpipe-probe --output=/dev/null --wrap=true 2>>"$LOG_DIR/probe.err")" ||
    return 1
  out="${out%%;*}"
  [[ "$out" =~ ^[0-9]+$ ]] || return 1
  PROBE_ID="$out"
}

PROBE_STATE=""
probe_done() {
  PROBE_STATE="$(squeue -h -t all -j "$PROBE_ID" -o '%T' 2>/dev/null | head -n 1)" || return 1
  case "$PROBE_STATE" in
    COMPLETED) return 0 ;;
    FAILED | CANCELLED* | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY | BOOT_FAIL | DEADLINE | PREEMPTED)
      show_logs "$SLURM_LOG_DIR/slurmctld.log" "$SLURM_LOG_DIR/slurmd.log"
      die "probe job $PROBE_ID ended $PROBE_STATE"
      ;;
  esac
  return 1
}

probe_in_sacct() { [[ "$(sacct -X -n -P -j "$PROBE_ID" -o State 2>/dev/null | head -n 1)" == COMPLETED ]]; }

# The cluster is ready only once a job submitted over ssh as the test user has completed.
run_probe() {
  local t=$SECONDS
  : >"$LOG_DIR/probe.err"
  wait_for 60 "sbatch over ssh to accept the probe job" submit_probe "$LOG_DIR/probe.err" "$SLURM_LOG_DIR/slurmctld.log"
  # On a busy cluster (other users' arrays in the queue) the probe waits its turn: allow for that.
  local probe_wait=60
  [[ -n "$(squeue -h -t PENDING,RUNNING -o %i 2>/dev/null | head -n 1)" ]] && probe_wait=600
  wait_for "$probe_wait" "probe job $PROBE_ID to complete" probe_done \
    "$SLURM_LOG_DIR/slurmctld.log" "$SLURM_LOG_DIR/slurmd.log"
  if [[ "$ACCOUNTING" == on ]]; then
    wait_for 30 "sacct to list probe job $PROBE_ID as COMPLETED" probe_in_sacct \
      "$SLURM_LOG_DIR/slurmdbd.log" "$SLURM_LOG_DIR/slurmctld.log"
    # The test user, not just root, must see its own jobs in accounting.
    [[ "$(ssh_as_user sacct -X -n -P -j "$PROBE_ID" -o State)" == COMPLETED ]] ||
      die "sacct run as $TEST_USER does not list probe job $PROBE_ID"
  fi
  log "probe job $PROBE_ID completed in $((SECONDS - t))s"
}

json_facts() {
  local version running_max cpus
  version="$(sbatch --version | awk '{ print $NF }')"
  [[ "$version" =~ ^[0-9][0-9A-Za-z.-]*$ ]] || die "unexpected SLURM version '$version'"
  # Report what slurmctld actually runs with, so a stale daemon cannot hide behind the config.
  running_max="$(scontrol show config | awk -F' *= *' '$1 == "MaxArraySize" { print $2 }')"
  [[ "$running_max" == "$MAX_ARRAY_SIZE" ]] ||
    die "slurmctld runs with MaxArraySize=$running_max, expected $MAX_ARRAY_SIZE"
  cpus="$(scontrol show node "$SHORT_HOST" -o | grep -o 'CPUTot=[0-9]*' | cut -d= -f2)"
  [[ "$cpus" == "$CPUS" ]] || die "node $SHORT_HOST has CPUTot=$cpus, expected $CPUS"
  cat <<EOF
{
  "host": "127.0.0.1",
  "port": $PORT,
  "user": "$TEST_USER",
  "identityFile": "$CLIENT_KEY",
  "knownHostsFile": "$KNOWN_HOSTS",
  "hostKeyFingerprint": "$HOST_KEY_FINGERPRINT",
  "slurmVersion": "$version",
  "accounting": $([[ "$ACCOUNTING" == on ]] && echo true || echo false),
  "maxArraySize": $MAX_ARRAY_SIZE,
  "cpus": $cpus,
  "partition": "$PARTITION",
  "workdir": "$WORKDIR"
}
EOF
}

write_connection_json() {
  local tmp
  tmp="$(mktemp "$STATE_DIR/.connection.json.XXXXXX")"
  json_facts >"$tmp"
  chmod 0644 "$tmp"
  mv -f -- "$tmp" "$CONNECTION_FILE"
}

# ---------------------------------------------------------------- main

install_packages
configure_host
setup_test_user
write_configs
start_munge
if [[ "$ACCOUNTING" == on ]]; then
  start_mariadb
  start_slurmdbd
  register_accounting
fi
start_slurm
start_sshd
run_probe
write_connection_json
log "cluster ready in $((SECONDS - T0))s; facts in $CONNECTION_FILE"
