#!/usr/bin/env bash
# A second private sshd for the test cluster that asks for a key AND a one-time
# code (TOTP through PAM with Debian's libpam-oath), for the two-factor tests.
# It logs in the same test user as the shared sshd (so jobs reach the same
# SLURM cluster) on its own port, with its own PAM service (sshd-hpcpipe-otp),
# and leaves the shared sshd on port 2222 as it is.
#
# Usage: bash scripts/cluster/otp-sshd.sh [--port N] [--stop]
# Needs the test cluster up first (scripts/cluster/up.sh): it reuses its test
# user, client key and state directory. Idempotent; writes its facts to
# $STATE_DIR/otp/otp.json (host, port, user, identityFile, knownHostsFile,
# usersFile, secretHex). Codes: `oathtool --totp <secretHex>`.
set -euo pipefail

SCRIPT_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$SCRIPT_DIR/lib.sh"

PORT=2223
STOP=0
while (($#)); do
  case "$1" in
    --port) PORT="${2:-}"; shift 2 ;;
    --stop) STOP=1; shift ;;
    -h | --help) sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option '$1' (see --help)" ;;
  esac
done
if ! [[ "$PORT" =~ ^[0-9]+$ ]] || ((PORT < 1024 || PORT > 65535)); then die "--port must be a number from 1024 to 65535"; fi
[[ "$(id -u)" == 0 ]] || die "must run as root (it installs packages and starts an sshd)"
check_state_dir

OTP_DIR="$STATE_DIR/otp"
SERVICE=sshd-hpcpipe-otp
SSHD_LINK="/usr/local/sbin/$SERVICE"
PAM_FILE="/etc/pam.d/$SERVICE"
CONFIG="$OTP_DIR/sshd_config"
HOST_KEY="$OTP_DIR/ssh_host_ed25519_key"
KNOWN_HOSTS="$OTP_DIR/known_hosts"
USERS_FILE="$OTP_DIR/users.oath"
SECRET_FILE="$OTP_DIR/secret.hex"
PID_FILE="$OTP_DIR/sshd.pid"
FACTS="$OTP_DIR/otp.json"
SSHD_LOG="$OTP_DIR/sshd.log"
CLIENT_KEY="$STATE_DIR/id_ed25519"

install -d -m 0700 "$OTP_DIR"
exec 8>"$OTP_DIR/lock"
flock -w 300 8 || die "timed out waiting for $OTP_DIR/lock"

running() {
  local pid
  [[ -s "$PID_FILE" ]] || return 1
  pid="$(cat -- "$PID_FILE")"
  proc_alive "$pid" && [[ "$(readlink "/proc/$pid/exe" 2>/dev/null)" == "$(readlink -f /usr/sbin/sshd)" ]]
}

if ((STOP)); then
  if running; then stop_pid "$(cat -- "$PID_FILE")" "otp sshd" 10; fi
  rm -f -- "$PID_FILE" "$FACTS"
  log "otp sshd stopped"
  exit 0
fi

[[ -s "$CONNECTION_FILE" && -s "$CLIENT_KEY" ]] || die "the test cluster is not up ($CONNECTION_FILE missing): run scripts/cluster/up.sh first"
TEST_USER="$(sed -n 's/^ *"user": *"\([a-z_][a-z0-9_-]*\)".*/\1/p' "$CONNECTION_FILE")"
[[ -n "$TEST_USER" ]] || die "no test user in $CONNECTION_FILE"

missing=()
for pkg in libpam-oath oathtool; do
  [[ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)" == "install ok installed" ]] || missing+=("$pkg")
done
if ((${#missing[@]})); then
  log "installing ${missing[*]} (apt-get, no recommends)"
  export DEBIAN_FRONTEND=noninteractive
  { apt-get install -y --no-install-recommends "${missing[@]}" || { apt-get update && apt-get install -y --no-install-recommends "${missing[@]}"; }; } \
    >"$OTP_DIR/apt.log" 2>&1 || { show_logs "$OTP_DIR/apt.log"; die "apt-get could not install ${missing[*]}"; }
fi

# OpenSSH names its PAM service after the program it was started as.
[[ "$(readlink -- "$SSHD_LINK" 2>/dev/null || true)" == /usr/sbin/sshd ]] || ln -sfn /usr/sbin/sshd "$SSHD_LINK"
changed=0
tmp="$(mktemp "$OTP_DIR/.pam.XXXXXX")"
cat >"$tmp" <<EOF
# hpcpipe test cluster: key + TOTP sshd (written by scripts/cluster/otp-sshd.sh)
auth required pam_oath.so usersfile=$USERS_FILE window=40 digits=6
account required pam_unix.so
session required pam_permit.so
EOF
if ! cmp -s "$tmp" "$PAM_FILE"; then install -m 0644 "$tmp" "$PAM_FILE"; changed=1; fi
rm -f -- "$tmp"

if [[ ! -s "$SECRET_FILE" ]]; then
  head -c 20 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$SECRET_FILE"
  chmod 0600 "$SECRET_FILE"
fi
SECRET="$(cat -- "$SECRET_FILE")"
[[ "$SECRET" =~ ^[0-9a-f]{40}$ ]] || die "$SECRET_FILE does not hold a 40-digit hex secret"
# pam_oath rewrites this file with the last code used (so a code is refused twice); keep its state.
if [[ ! -s "$USERS_FILE" ]] || ! grep -Eq "^HOTP/T30[[:space:]]+${TEST_USER}[[:space:]]+-[[:space:]]+$SECRET" "$USERS_FILE"; then
  printf 'HOTP/T30 %s - %s\n' "$TEST_USER" "$SECRET" >"$USERS_FILE"
fi
chmod 0600 "$USERS_FILE"

if [[ ! -s "$HOST_KEY" ]]; then
  rm -f -- "$HOST_KEY" "$HOST_KEY.pub"
  ssh-keygen -q -t ed25519 -N '' -C hpcpipe-otp-host -f "$HOST_KEY"
  changed=1
fi
printf '[127.0.0.1]:%s %s\n' "$PORT" "$(cut -d' ' -f1,2 -- "$HOST_KEY.pub")" >"$KNOWN_HOSTS"
chmod 0644 "$KNOWN_HOSTS"

tmp="$(mktemp "$OTP_DIR/.sshd_config.XXXXXX")"
cat >"$tmp" <<EOF
# hpcpipe test cluster: an sshd asking for a key and a one-time code (otp-sshd.sh)
Port $PORT
ListenAddress 127.0.0.1
HostKey $HOST_KEY
PidFile $PID_FILE
AuthorizedKeysFile .ssh/authorized_keys
UsePAM yes
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication yes
AuthenticationMethods publickey,keyboard-interactive
PermitRootLogin no
AllowUsers $TEST_USER
MaxSessions 10
MaxStartups 100:30:200
LoginGraceTime 120
X11Forwarding no
PrintMotd no
Subsystem sftp internal-sftp
EOF
/usr/sbin/sshd -t -f "$tmp" >"$OTP_DIR/check.out" 2>&1 || { show_logs "$OTP_DIR/check.out"; rm -f -- "$tmp"; die "sshd rejects the generated config"; }
if ! cmp -s "$tmp" "$CONFIG"; then mv -f -- "$tmp" "$CONFIG"; changed=1; else rm -f -- "$tmp"; fi
chmod 0644 "$CONFIG"

if ((changed)) && running; then stop_pid "$(cat -- "$PID_FILE")" "otp sshd" 10; fi
if ! running; then
  install -d -m 0755 /run/sshd
  log "starting the key + one-time-code sshd on 127.0.0.1:$PORT (PAM service $SERVICE)"
  (cd / && env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 setsid "$SSHD_LINK" -f "$CONFIG" -E "$SSHD_LOG" </dev/null >/dev/null 2>&1 9>&- 8>&-)
fi
for ((i = 0; i < 100; i++)); do
  if ssh-keyscan -T 2 -p "$PORT" 127.0.0.1 2>/dev/null | grep -q ssh-ed25519; then break; fi
  sleep 0.1
done
((i < 100)) || { show_logs "$SSHD_LOG"; die "the otp sshd did not answer on 127.0.0.1:$PORT"; }

tmp="$(mktemp "$OTP_DIR/.otp.json.XXXXXX")"
cat >"$tmp" <<EOF
{
  "host": "127.0.0.1",
  "port": $PORT,
  "user": "$TEST_USER",
  "identityFile": "$CLIENT_KEY",
  "knownHostsFile": "$KNOWN_HOSTS",
  "usersFile": "$USERS_FILE",
  "secretHex": "$SECRET",
  "pamService": "$SERVICE"
}
EOF
chmod 0600 "$tmp"
mv -f -- "$tmp" "$FACTS"
log "otp sshd ready on 127.0.0.1:$PORT; facts in $FACTS"
