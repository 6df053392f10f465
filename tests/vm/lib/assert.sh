# Assertions for VM scenarios (sourced: . /kld/run/lib/assert.sh).

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

# refuses STATUS PATTERN CMD...: CMD exits STATUS and its stderr matches PATTERN.
refuses() {
    want=$1 pattern=$2
    shift 2
    if "$@" >/tmp/refuses.out 2>/tmp/refuses.err; then
        fail "expected '$*' to fail; it printed: $(cat /tmp/refuses.out)"
    else
        got=$?
    fi
    [ "$got" -eq "$want" ] || fail "'$*' exited $got, expected $want: $(cat /tmp/refuses.err)"
    grep -q -- "$pattern" /tmp/refuses.err || fail "'$*' stderr lacks '$pattern': $(cat /tmp/refuses.err)"
}

# same A B: the two strings are equal.
same() {
    [ "$1" = "$2" ] || fail "expected '$2', got '$1'"
}

# snapshots DATASET: names of DATASET's snapshots, one a line.
snapshots() {
    zfs list -H -o name -t snapshot -d 1 "$1"
}

# children PID: the process IDs whose parent is PID.
children() {
    for stat in /proc/[0-9]*/stat; do
        read -r p _ _ pp _ 2>/dev/null < "$stat" || continue
        if [ "$pp" = "$1" ]; then echo "$p"; fi
    done
    return 0
}

# kill_tree PID: SIGKILL a process and everything it started, as a crash or
# Ctrl-C would.
kill_tree() {
    kids=$(children "$1")
    kill -9 "$1" 2>/dev/null || true
    for kid in $kids; do kill_tree "$kid"; done
    # Wait until it is gone (or a zombie, which holds nothing).
    while [ -e "/proc/$1/stat" ] && ! grep -q '^[0-9]* ([^)]*) Z' "/proc/$1/stat" 2>/dev/null; do
        sleep 0.05
    done
}

# Fault injection (kld_fs::fault): every program kld runs, every file it
# replaces and every libzfs_core call is a step.
#
# steps CMD...: runs CMD for real with a trace and prints how many steps it
# took (CMD's own output goes to /tmp/steps.out and /tmp/steps.err; the
# trace, one step a line, to /tmp/steps.trace).
steps() {
    rm -f /tmp/steps.trace
    KLD_FAULT_TRACE=/tmp/steps.trace "$@" >/tmp/steps.out 2>/tmp/steps.err ||
        fail "'$*' failed while counting its steps: $(cat /tmp/steps.err)"
    if [ -f /tmp/steps.trace ]; then wc -l < /tmp/steps.trace; else echo 0; fi
}

# killed_after N CMD...: runs CMD, which kills itself with SIGKILL right
# after its Nth step; fails unless it died that way.
# (Its variables start with killed_ so that a caller's loop counter, such
# as n, is not overwritten: sh has no local variables.)
killed_after() {
    killed_n=$1
    shift
    set +e
    KLD_FAULT_KILL_AFTER=$killed_n "$@" >/tmp/killed.out 2>/tmp/killed.err
    killed_got=$?
    set -e
    [ "$killed_got" -eq 137 ] || fail "'$*' was to be killed after step $killed_n, but exited $killed_got: $(cat /tmp/killed.err)"
}
