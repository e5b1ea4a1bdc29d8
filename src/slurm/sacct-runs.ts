// sacct's answer shortened on the cluster before it is sent (issue 16): a small
// awk filter run-length-encodes neighbouring rows of one array's tasks that say
// the same thing. A map of 1,000,000 finished tasks is then some thousands of
// lines instead of a million (37 MiB): the SSH transfer and the parse shrink
// with it. parseSacctRunsAnswer (parse.ts) reads the filtered answer; the
// scheduler falls back to plain sacct when the filter cannot run or its answer
// cannot be read.
// No imports: parse.ts and commands.ts both read these constants.

/** The name the filter runs under (`$0` of `bash -c`): shown by ps and in its messages. */
export const SACCT_RUNS_NAME = "hpcpipe-sacct";

/** The trailer's first field: the filter's last line is `~hpcpipe-sacct|1|<rows read>`. */
export const SACCT_RUNS_TRAILER = "~hpcpipe-sacct";

/** The filter's format version (the trailer's second field). */
export const SACCT_RUNS_VERSION = 1;

/** Exit status of the filter script when awk failed (sacct's own status is passed on otherwise). */
export const SACCT_RUNS_FILTER_FAILED = 90;

/**
 * The awk program. Input: `sacct -n -P -o JobID,JobIDRaw,State,ExitCode,Reason`.
 * Rows `A_t|O|TAIL` (array A, task t, own job id O, every id 1-15 digits) that
 * follow each other with the same A and the same TAIL (the text after the
 * second `|`), task ids counting up by one and own ids counting up by one
 * (mode s) or all the same (mode e), become ONE line `~A|first|last|O|mode|TAIL`
 * (O: the first task's own id). With `-v anyown=1` (the caller needs no task's
 * own id) the own ids may be anything: such a run is `~A|first|last|A|a|TAIL`
 * and its tasks carry the array's job id. A run of one row, and every other
 * row (a plain job, a pending range, a step, anything unexpected), is printed
 * as it came. Blank lines are dropped. The last line is the trailer with the
 * number of rows read, so a cut answer is seen. The numbers are printed as they
 * were read (old mawk prints large integers in %g). No single quote may appear
 * here (the program is single-quoted in the script).
 */
export const SACCT_RUNS_AWK = `BEGIN { n = 0 }
function flush() {
  if (have == 1) print row
  else if (have > 1 && mode == "a") print "~" a "|" fs "|" ls "|" a "|a|" tail
  else if (have > 1) print "~" a "|" fs "|" ls "|" os "|" mode "|" tail
  have = 0
}
/^[ \\t\\r]*$/ { next }
{
  n++
  if (match($0, /^[0-9]+_[0-9]+[|][0-9]+[|]/)) {
    head = substr($0, 1, RLENGTH - 1)
    rest = substr($0, RLENGTH + 1)
    u = index(head, "_")
    b = index(head, "|")
    A = substr(head, 1, u - 1)
    ts = substr(head, u + 1, b - u - 1)
    ows = substr(head, b + 1)
    if (length(A) <= 15 && length(ts) <= 15 && length(ows) <= 15) {
      t = ts + 0
      o = ows + 0
      if (have > 0 && A == a && rest == tail && t == last + 1) {
        if (anyown == 1) mode = "a"
        else if (have == 1 && o == own + 1) mode = "s"
        else if (have == 1 && o == own) mode = "e"
        if (mode == "a" || (mode == "s" && o == own + (t - first)) || (mode == "e" && o == own)) {
          have++
          last = t
          ls = ts
          next
        }
      }
      flush()
      a = A; tail = rest; first = t; last = t; fs = ts; ls = ts; own = o; os = ows; row = $0; have = 1; mode = ""
      next
    }
  }
  flush()
  print
}
END { flush(); print "${SACCT_RUNS_TRAILER}|${SACCT_RUNS_VERSION}|" n }`;

/** The script's first word when the caller needs no task's own job id (awk's anyown=1). */
export const SACCT_RUNS_ANY_OWN = "--any-own-ids";

/**
 * `bash -c SCRIPT hpcpipe-sacct [--any-own-ids] COMMAND...`: runs COMMAND (the sacct argv) into
 * the awk filter. sacct's stderr and exit status are passed on (so "accounting
 * storage is disabled" and the database errors read as from sacct itself); when
 * awk fails (missing, killed), it says so on stderr and exits 90.
 */
export const SACCT_RUNS_SCRIPT = `anyown=0
if [ "\${1-}" = ${SACCT_RUNS_ANY_OWN} ]; then anyown=1; shift; fi
"$@" | LC_ALL=C awk -v anyown="$anyown" '${SACCT_RUNS_AWK}'
s=("\${PIPESTATUS[@]}")
if [ "\${s[1]}" != 0 ]; then echo "${SACCT_RUNS_NAME}: the awk filter failed (exit \${s[1]})" >&2; exit ${SACCT_RUNS_FILTER_FAILED}; fi
exit "\${s[0]}"`;
