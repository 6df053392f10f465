#!/bin/sh
# disks: 1
# kdir under kills and concurrency (issue 17, defect 3): `kdir -p` and
# `kdir --migrate` killed after every one of their steps, then run again;
# a migration never crosses a mount point, never swaps while a process holds
# a file open in the directory, and two migrations of one directory never
# run at once.
set -eu
. /kld/run/lib/assert.sh
zpool create -O mountpoint=/kdirf -O compression=off kdirf $KLD_VM_DISKS
zfs create kdirf/srv
# Bystanders: a sibling dataset and a sibling directory nothing may touch.
zfs create kdirf/srv/keep
echo keep > /kdirf/srv/keep/f
mkdir /kdirf/srv/other
echo other > /kdirf/srv/other/f

manifest() { (cd "$1" && find . | sort | while read -r f; do stat -c '%n %F %a %u:%g %s' "$f"; done; find . -type f | sort | xargs -r sha256sum); }
bystanders() {
    same "$(cat /kdirf/srv/keep/f) $(cat /kdirf/srv/other/f)" "keep other"
}
datasets() { zfs list -H -o name -r kdirf | tr '\n' ' '; }

# --- kdir -p: a chain of three new datasets, killed after every step.
P=/kdirf/srv/p1/p2/p3
total=$(steps kdir -p $P)
echo "kdir -p: $total steps"
[ "$total" -ge 3 ] || fail "kdir -p took only $total steps: $(cat /tmp/steps.trace)"
zfs destroy -r kdirf/srv/p1
i=1
while [ "$i" -le "$total" ]; do
    killed_after "$i" kdir -p $P
    # Run again: it finishes (or says the leaf is already there).
    if ! kdir -p $P >out 2>err; then
        grep -q "already a dataset: kdirf/srv/p1/p2/p3" err || fail "kill $i: the second run failed: $(cat err)"
    fi
    for d in kdirf/srv/p1 kdirf/srv/p1/p2 kdirf/srv/p1/p2/p3; do
        same "$(zfs get -H -o value mountpoint,mounted $d | tr '\n' ' ')" "/$d yes "
    done
    same "$(datasets)" "kdirf kdirf/srv kdirf/srv/keep kdirf/srv/p1 kdirf/srv/p1/p2 kdirf/srv/p1/p2/p3 "
    bystanders
    zfs destroy -r kdirf/srv/p1
    rm -rf /kdirf/srv/p1
    i=$((i + 1))
done

# --- kdir --migrate, killed after every step: the data is always whole in
# the directory or its dataset, and the next run finishes the migration.
P=/kdirf/srv/m
O=/kdirf/srv/.kdir-old-m
T=/kdirf/srv/.kdir-new-m
fill() {
    mkdir -p $P/sub
    echo one > $P/a
    echo two > $P/sub/b
    ln -s a $P/l
    chmod 0750 $P/sub
    chown 1234:5678 $P/sub/b
}
migrated() {
    same "$(zfs get -H -o value mountpoint,mounted kdirf/srv/m | tr '\n' ' ')" "$P yes "
    same "$(zfs get -H -o value kld:kdir-migrate kdirf/srv/m)" -
    manifest $P > after
    cmp before after || fail "$1: the tree changed: $(diff before after)"
    [ ! -e $O ] || fail "$1: the original was left in $O"
    [ ! -e $T ] || fail "$1: $T was left behind"
    same "$(datasets)" "kdirf kdirf/srv kdirf/srv/keep kdirf/srv/m "
    bystanders
}
fill
manifest $P > before
total=$(steps kdir --migrate $P)
echo "kdir --migrate: $total steps"
cat /tmp/steps.trace
migrated "uninterrupted"
i=1
while [ "$i" -le "$total" ]; do
    zfs destroy -r kdirf/srv/m
    rm -rf $P $O $T
    fill
    killed_after "$i" kdir --migrate $P
    # Right after the kill, the whole tree is in the directory (or its
    # dataset) or in the original moved aside.
    manifest $P > now 2>/dev/null || true
    if ! cmp -s before now; then
        manifest $O > now 2>/dev/null || true
        cmp -s before now || fail "kill $i: the data is neither whole in $P nor in $O"
    fi
    # Run again: it finishes (or, killed after its last step, the
    # migration was done and the directory is a dataset now).
    if kdir --migrate $P >out 2>err; then
        same "$(cat out)" kdirf/srv/m
    else
        grep -q "already a dataset: kdirf/srv/m" err || fail "kill $i: the second run failed: $(cat err)"
    fi
    migrated "kill $i"
    i=$((i + 1))
done
zfs destroy -r kdirf/srv/m
rm -rf $P

# --- A dataset mounted inside the directory: refused, nothing touched (the
# old code copied through it and then emptied it).
mkdir -p /kdirf/srv/b/inner
echo top > /kdirf/srv/b/top
zfs create -o mountpoint=/kdirf/srv/b/inner kdirf/srv/inner
echo precious > /kdirf/srv/b/inner/data
refuses 1 "kdirf/srv/inner is mounted at /kdirf/srv/b/inner" kdir --migrate /kdirf/srv/b
same "$(cat /kdirf/srv/b/inner/data) $(cat /kdirf/srv/b/top)" "precious top"
zfs list kdirf/srv/b >/dev/null 2>&1 && fail "a dataset was created"
[ ! -e /kdirf/srv/.kdir-old-b ] || fail "the directory was moved aside"
zfs destroy kdirf/srv/inner
rm -rf /kdirf/srv/b

# --- A file held open in the directory: refused, naming the process, and
# the holder's later writes are kept (the old code migrated and the writes
# went to the deleted original).
mkdir /kdirf/srv/c
echo start > /kdirf/srv/c/log
rm -f /tmp/go
(
    exec 3>>/kdirf/srv/c/log
    while [ ! -e /tmp/go ]; do sleep 0.05; done
    echo late >&3
) &
holder=$!
until [ -e /proc/$holder/fd/3 ]; do sleep 0.05; done
refuses 1 "held open by pid $holder" kdir --migrate /kdirf/srv/c
grep -q "stop it" /tmp/refuses.err || fail "no hint: $(cat /tmp/refuses.err)"
zfs list kdirf/srv/c >/dev/null 2>&1 && fail "a dataset was created"
touch /tmp/go
wait $holder
same "$(cat /kdirf/srv/c/log | tr '\n' ' ')" "start late "
same "$(kdir --migrate /kdirf/srv/c)" kdirf/srv/c
same "$(cat /kdirf/srv/c/log | tr '\n' ' ')" "start late "
# A process whose working directory is inside counts too.
mkdir -p /kdirf/srv/w/sub
echo x > /kdirf/srv/w/sub/f
(cd /kdirf/srv/w/sub && while [ ! -e /tmp/go2 ]; do sleep 0.05; done) &
holder=$!
until [ "$(readlink /proc/$holder/cwd)" = /kdirf/srv/w/sub ]; do sleep 0.05; done
refuses 1 "pid $holder" kdir --migrate /kdirf/srv/w
touch /tmp/go2
wait $holder
same "$(kdir --migrate /kdirf/srv/w)" kdirf/srv/w

# --- Two migrations of one directory at once: the second is refused,
# naming the first; the first finishes with everything.
mkdir /kdirf/srv/d
i=0
while [ $i -lt 40 ]; do dd if=/dev/urandom of=/kdirf/srv/d/f$i bs=64k count=8 2>/dev/null; i=$((i + 1)); done
manifest /kdirf/srv/d > before
kdir --migrate /kdirf/srv/d >a.out 2>a.err &
first=$!
until zfs list kdirf/srv/d >/dev/null 2>&1; do sleep 0.02; done
kill -STOP $first
refuses 1 "held by pid $first (kdir --migrate /kdirf/srv/d)" kdir --migrate /kdirf/srv/d
kill -CONT $first
wait $first || fail "the first migration failed: $(cat a.err)"
same "$(cat a.out)" kdirf/srv/d
manifest /kdirf/srv/d > after
cmp before after || fail "the concurrent migration changed the tree"
# Three at once: exactly one migrates, the others are refused.
mkdir /kdirf/srv/e
echo e > /kdirf/srv/e/f
for k in 1 2 3; do kdir --migrate /kdirf/srv/e >e$k.out 2>e$k.err & done
wait
won=0
for k in 1 2 3; do
    if [ -s e$k.out ]; then
        same "$(cat e$k.out)" kdirf/srv/e
        won=$((won + 1))
    else
        grep -q "another kdir of /kdirf/srv/e is running: held by\|already a dataset: kdirf/srv/e" e$k.err || fail "run $k: $(cat e$k.err)"
    fi
done
same $won 1
same "$(cat /kdirf/srv/e/f)" e
bystanders
zpool destroy kdirf
