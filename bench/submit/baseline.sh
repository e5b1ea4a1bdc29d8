#!/usr/bin/env bash
# The hand-written baseline of bench/submit: submits every job of a workload up
# front (one job per step, an array for a group or a map, afterok
# dependencies with --kill-on-invalid-dep=yes) and polls squeue every 0.5 s
# until all of them have ended; all over ONE ssh connection (the whole script
# goes to `ssh HOST bash -s` on stdin). Prints the job ids, the final states
# and timings; exits 0 when every task ended COMPLETED.
#
# Usage: baseline.sh --host H --port P --user U --identity KEY --known-hosts FILE
#                    [--partition P] [--poll S] SHAPE_FILE
#        baseline.sh --print [--partition P] SHAPE_FILE   (prints the remote script)
#
# SHAPE_FILE lines (blank lines and # comments ignored):
#   options <sbatch option>...          added to every sbatch (e.g. --mem=500M --time=10:00)
#   job <name> <tasks|-> <after|-> <command...>
#       tasks: "-" for a plain job, N for an array 0..N-1
#       after: "-", or the name of an earlier job this one waits for (afterok)
#       command: bash run in the job's run directory ($SLURM_ARRAY_TASK_ID is set in arrays)
set -euo pipefail

usage() { sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 64; }

host="" port=22 user="" identity="" known_hosts="" partition="" poll=0.5 shape="" print=0
while (($# > 0)); do
  case $1 in
    --host) host=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --user) user=$2; shift 2 ;;
    --identity) identity=$2; shift 2 ;;
    --known-hosts) known_hosts=$2; shift 2 ;;
    --partition) partition=$2; shift 2 ;;
    --poll) poll=$2; shift 2 ;;
    --print) print=1; host=${host:-none}; user=${user:-none}; shift ;;
    -h | --help) usage ;;
    -*) echo "baseline.sh: unknown option $1" >&2; usage ;;
    *) shape=$1; shift ;;
  esac
done
[[ -n $host && -n $user && -n $shape && -r $shape ]] || usage
[[ $poll =~ ^[0-9]+(\.[0-9]+)?$ ]] || { echo "baseline.sh: --poll wants seconds" >&2; exit 64; }

# ---- the remote script, generated from the shape file
opts=()
[[ -z $partition ]] || opts+=("--partition=$partition")
jobs_sh=""
declare -A known=()
while read -r kind rest; do
  [[ -z $kind || $kind == \#* ]] && continue
  case $kind in
    options)
      read -r -a more <<<"$rest"
      opts+=("${more[@]}")
      ;;
    job)
      read -r name tasks after command <<<"$rest"
      [[ $name =~ ^[A-Za-z0-9_]+$ ]] || { echo "baseline.sh: bad job name '$name'" >&2; exit 65; }
      [[ -n ${command:-} ]] || { echo "baseline.sh: job $name has no command" >&2; exit 65; }
      args=("--job-name=bl_$name")
      if [[ $tasks != - ]]; then
        [[ $tasks =~ ^[0-9]+$ && $tasks -ge 1 ]] || { echo "baseline.sh: job $name: tasks must be - or N >= 1" >&2; exit 65; }
        args+=("--array=0-$((tasks - 1))" "--output=logs/${name}_%a.out")
      else
        args+=("--output=logs/$name.out")
      fi
      dep=""
      if [[ $after != - ]]; then
        [[ -n ${known[$after]:-} ]] || { echo "baseline.sh: job $name runs after unknown job '$after'" >&2; exit 65; }
        dep="--dependency=afterok:\"\${ids[$after]}\" --kill-on-invalid-dep=yes"
      fi
      known[$name]=1
      jobs_sh+="ids[$name]=\$(sbatch --parsable ${opts[*]@Q} ${args[*]@Q} $dep --wrap=${command@Q})"$'\n'
      jobs_sh+="ids[$name]=\${ids[$name]%%;*}; all+=(\"\${ids[$name]}\"); echo \"job $name \${ids[$name]}\""$'\n'
      ;;
    *) echo "baseline.sh: unknown line kind '$kind' in $shape" >&2; exit 65 ;;
  esac
done <"$shape"
((${#known[@]} > 0)) || { echo "baseline.sh: no jobs in $shape" >&2; exit 65; }

remote=$(cat <<REMOTE
set -euo pipefail
now() { date +%s.%N; }
since() { awk -v a="\$1" -v b="\$2" 'BEGIN { printf "%.3f", b - a }'; }
t0=\$(now)
dir=\$(mktemp -d "\$HOME/hpcpipe-bench-baseline.XXXXXX")
trap 'rm -rf -- "\$dir"' EXIT
cd -- "\$dir"
mkdir logs
declare -A ids=()
all=()
# The client went away (ssh killed): the next write fails; cancel what was submitted.
cancel_all() { ((\${#all[@]} == 0)) || scancel "\${all[@]}" 2>/dev/null || true; exit 141; }
trap cancel_all PIPE HUP TERM INT
$jobs_sh
t1=\$(now)
printf 'submitted %d job(s) in %s s\n' "\${#all[@]}" "\$(since "\$t0" "\$t1")"
list=\$(IFS=,; echo "\${all[*]}")
polls=0
while :; do
  polls=\$((polls + 1))
  states=\$(squeue --me -h -t all -r -o '%T' -j "\$list")
  active=\$(grep -cE '^(PENDING|RUNNING|CONFIGURING|COMPLETING|REQUEUED|RESIZING|SUSPENDED|SIGNALING|STAGE_OUT|STOPPED)' <<<"\$states" || true)
  ((active > 0)) || break
  echo "poll \$polls: \$active task(s) not ended"
  sleep $poll
done
t2=\$(now)
printf 'all ended in %s s after %d polls\n' "\$(since "\$t0" "\$t2")" "\$polls"
printf 'states: %s\n' "\$(sort <<<"\$states" | uniq -c | awk '{printf "%s%s=%s", (NR>1?" ":""), \$2, \$1}')"
if grep -vq '^COMPLETED\$' <<<"\$states"; then exit 1; fi
REMOTE
)

if ((print)); then printf '%s\n' "$remote"; exit 0; fi

ssh_opts=(-p "$port" -o BatchMode=yes -o ConnectTimeout=20)
[[ -z $identity ]] || ssh_opts+=(-i "$identity" -o IdentitiesOnly=yes)
[[ -z $known_hosts ]] || ssh_opts+=(-o "UserKnownHostsFile=$known_hosts" -o StrictHostKeyChecking=yes)
exec ssh "${ssh_opts[@]}" "$user@$host" bash -s <<<"$remote"
