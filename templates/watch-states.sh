# hpcpipe-state-watcher: streams the state files of one run's states/ directory to the client watching it.
# Shipped by the client as `bash -c "$(this file)" hpcpipe-state-watcher DIR TICK INOTIFY MAX FULL_EVERY`;
# every value is a positional argument, never part of this text. bash and coreutils only.
#   DIR         the run's states/ directory (it may not exist yet)
#   TICK        seconds between scans (a fraction of a second)
#   INOTIFY     1: let inotifywait, when installed, wake a tick early; 0: scan only
#   MAX         largest state file (bytes) sent inline; bigger ones are announced without content
#   FULL_EVERY  scan every file every N ticks even when the directory looks unchanged
# Lines it prints (src/watch/events.ts parses and validates them):
#   H <protocol> <pid>                     hello
#   M inotify|scan                         how ticks are woken from now on
#   R inotify|scan                         the first scan is done: every file present was sent
#   S <inode:size:mtime:ctime> <name> <json or ->   a new or changed state file; for a new or changed pack
#                                          file (<map>.items-<first>-<last>.jsonl, a packed task's states,
#                                          one JSON line each), one line per complete line: the pack's
#                                          signature, <key>.json (the key in the line) and the line
#   E                                      a scan is done: the S lines before it are one consistent view
#                                          (a scan sends names in glob order, so an item's unit file can
#                                          come before its steps' files, which were written first)
# It waits on its stdin between ticks and exits at EOF: when the client closes the channel, or dies, so
# does the watcher (and the inotifywait it started).
set -u
shopt -s nullglob
dir=$1 tick=$2 want_inotify=$3 max=$4 full_every=$5
[[ $tick =~ ^[0-9]*\.?[0-9]+$ && $want_inotify =~ ^[01]$ && $max =~ ^[0-9]{1,9}$ && $full_every =~ ^[1-9][0-9]{0,5}$ ]] || {
  echo "hpcpipe-state-watcher: bad arguments" >&2
  exit 2
}
declare -A seen=()
ino_pid="" ino_fd="" mode=scan last_dir="" ticks=0 scans=0
# Between full scans, a scan looks only at files whose status changed in the last 2-4 s: two marker files
# in the run directory (outside the watched one: inotify would see them), touched in turn every FULL_EVERY
# ticks with the file system's own clock (touch without a date), so that neither a skewed clock here nor
# coarse file times there hide a file. Without them, every scan is a full one.
inc=0 mark_old="" mark_new=""
stop() {
  if [[ -n $ino_pid ]]; then kill "$ino_pid" 2>/dev/null; fi
  if [[ -n $mark_old ]]; then rm -f -- "$mark_old" "$mark_new" 2>/dev/null; fi
}
trap stop EXIT
trap 'exit 0' HUP PIPE TERM INT
say() { printf '%s\n' "$1" || exit 0; }

setup_marks() {
  mark_old=../.hpcpipe-watch.$$.a mark_new=../.hpcpipe-watch.$$.b
  # The first window reaches back 2 s before the watcher started (by this host's clock).
  if touch -d '2 seconds ago' -- "$mark_old" "$mark_new" 2>/dev/null && command -v find >/dev/null 2>&1; then
    inc=1
  else
    rm -f -- "$mark_old" "$mark_new" 2>/dev/null
    mark_old="" mark_new=""
  fi
}

# Every FULL_EVERY ticks: the older marker is touched now and becomes the newer; scans compare with the
# other one, touched one period ago.
rotate_marks() {
  local m=$mark_old
  if ((inc)) && touch -- "$m" 2>/dev/null; then mark_old=$mark_new mark_new=$m; else inc=0; fi
}

# REPLY := the length of $1 in bytes.
bytes() {
  local LC_ALL=C
  REPLY=${#1}
}

# send_pack SIG NAME: one S line per complete line of pack file NAME (a last line without its newline is
# torn: not sent), named by the line's key: the LAST `,"key":"` of the line (the outputs and meta objects
# come before it and may hold members named "key"); a line over MAX bytes or with control characters is
# announced without its content.
send_pack() {
  local sig=$1 line key
  local -a lines=()
  mapfile lines <"$2" 2>/dev/null || return 0
  for line in "${lines[@]}"; do
    [[ $line == *$'\n' && $line == *',"key":"'* ]] || continue
    line=${line%$'\n'}
    key=${line##*,\"key\":\"}
    key=${key%%\"*}
    [[ $key =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]*$ ]] || continue
    bytes "$line"
    if ((REPLY > max)) || [[ $line == *[[:cntrl:]]* ]]; then line=-; fi
    say "S $sig $key.json $line"
  done
}

# scan full|new: sends every state file and pack file (all of them, or those changed lately) that is new
# or changed since it was last sent (temp files start with a dot: not matched).
scan() {
  local -a names=()
  local rec sig name content size i
  if [[ $1 == full ]] || ((!inc)); then
    names=(*.json *.jsonl)
  else
    mapfile -t -d '' names < <(find . -maxdepth 1 \( -name '*.json' -o -name '*.jsonl' \) -cnewer "$mark_old" -printf '%f\0' 2>/dev/null)
  fi
  for ((i = 0; i < ${#names[@]}; i += 500)); do
    while IFS= read -r -d '' rec; do
      sig=${rec%% *}
      name=${rec#* }
      [[ $name =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]*\.jsonl?$ ]] || continue
      [[ ${seen[$name]:-} == "$sig" ]] && continue
      seen[$name]=$sig
      if [[ $name == *.jsonl ]]; then
        send_pack "$sig" "$name"
        continue
      fi
      size=${sig#*:}
      size=${size%%:*}
      content=""
      # read stops at a NUL (status 0: not a state file's text) or at the end of the file (status 1: all of it).
      if ((size > max)) || IFS= read -r -d '' content <"$name"; then content=""; fi
      content=${content%$'\n'}
      if [[ -z $content || $content == *[[:cntrl:]]* ]]; then content=-; fi
      say "S $sig $name $content"
    done < <(stat --printf '%i:%s:%Y:%Z %n\0' -- "${names[@]:i:500}" 2>/dev/null)
  done
  say E
}

start_inotify() {
  [[ $want_inotify == 1 && -z $ino_pid ]] || return 0
  command -v inotifywait >/dev/null 2>&1 || return 0
  coproc INO { exec inotifywait -q -m -e moved_to -e close_write -e create --format x -- . 2>/dev/null; }
  ino_pid=$INO_PID
  ino_fd=${INO[0]}
  mode=inotify
  say "M inotify"
}

# Waits one tick on stdin (EOF ends the watcher) or, with inotify, on its events, which end the tick early.
wait_tick() {
  local rc n=0
  if [[ -n $ino_pid ]]; then
    if read -r -t "$tick" -u "$ino_fd" _; then
      # Let a burst settle, then scan once for all of it.
      while ((n < 10000)) && read -r -t 0.02 -u "$ino_fd" _; do n=$((n + 1)); done
      last_dir=""
    else
      rc=$?
      if ((rc <= 128)); then
        # inotifywait ended (watch limit, the directory went away): the scan goes on alone.
        ino_pid="" ino_fd="" mode=scan
        say "M scan"
      fi
    fi
    if read -r -t 0 -u 0; then
      IFS= read -r -t 1 _
      rc=$?
      ((rc == 0 || rc > 128)) || exit 0
    fi
  else
    IFS= read -r -t "$tick" _
    rc=$?
    ((rc == 0 || rc > 128)) || exit 0
  fi
}

say "H 2 $$"
until [[ -d $dir ]] && cd -- "$dir" 2>/dev/null; do
  if ((scans == 0)); then
    scans=1
    say "R scan"
  fi
  wait_tick
done
start_inotify
setup_marks
while :; do
  now=$(stat -c '%i %y %z' -- . 2>/dev/null) || exit 0
  # The first scan and every 4th periodic one read every file; in between, a scan when the directory
  # changed, and every FULL_EVERY ticks regardless (coarse or cached directory times), reads only the
  # files whose status changed lately.
  if ((ticks > 0 && ticks % full_every == 0)); then rotate_marks; fi
  if ((ticks % (full_every * 4) == 0)); then
    last_dir=$now
    scan full
    scans=$((scans + 1))
    ((scans != 1)) || say "R $mode"
  elif [[ $now != "$last_dir" ]] || ((ticks % full_every == 0)); then
    last_dir=$now
    scan new
    scans=$((scans + 1))
  fi
  ticks=$((ticks + 1))
  wait_tick
done
