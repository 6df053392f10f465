#!/bin/sh
# disks: 1
# kdir under kills and concurrency (issue 17, defect 3): `kdir -p` and
# `kdir --migrate` killed after every one of their steps, then run again;
# a migration never crosses a mount point, never swaps while a process holds
# a file open in the directory, and two migrations of one directory never
# run at once.
set -eu
. /kld/run/lib/assert.sh
zpool create -O mountpoint=/kf -O compression=off kf $KLD_VM_DISKS
zfs create kf/srv
# Bystanders: a sibling dataset and a sibling directory nothing may touch.
zfs create kf/srv/keep
echo keep > /kf/srv/keep/f
mkdir /kf/srv/other
echo other > /kf/srv/other/f

manifest() { (cd "$1" && find . | sort | while read -r f; do stat -c '%n %F %a %u:%g %s' "$f"; done; find . -type f | sort | xargs -r sha256sum); }
bystanders() {
    same "$(cat /kf/srv/keep/f) $(cat /kf/srv/other/f)" "keep other"
}
datasets() { zfs list -H -o name -r kf | tr '\n' ' '; }

# --- kdir -p: a chain of three new datasets, killed after every step.
P=/kf/srv/p1/p2/p3
total=$(steps kdir -p $P)
echo "kdir -p: $total steps"
[ "$total" -ge 3 ] || fail "kdir -p took only $total steps: $(cat /tmp/steps.trace)"
zfs destroy -r kf/srv/p1
i=1
while [ "$i" -le "$total" ]; do
    killed_after "$i" kdir -p $P
    # Run again: it finishes (or says the leaf is already there).
    if ! kdir -p $P >out 2>err; then
        grep -q "already a dataset: kf/srv/p1/p2/p3" err || fail "kill $i: the second run failed: $(cat err)"
    fi
    for d in kf/srv/p1 kf/srv/p1/p2 kf/srv/p1/p2/p3; do
        same "$(zfs get -H -o value mountpoint,mounted $d | tr '\n' ' ')" "/$d yes "
    done
    same "$(datasets)" "kf kf/srv kf/srv/keep kf/srv/p1 kf/srv/p1/p2 kf/srv/p1/p2/p3 "
    bystanders
    zfs destroy -r kf/srv/p1
    rm -rf /kf/srv/p1
    i=$((i + 1))
done

# --- kdir --migrate, killed after every step: the data is always whole in
# the directory or its dataset, and the next run finishes the migration.
P=/kf/srv/m
O=/kf/srv/.kdir-old-m
T=/kf/srv/.kdir-new-m
fill() {
    mkdir -p $P/sub
    echo one > $P/a
    echo two > $P/sub/b
    ln -s a $P/l
    chmod 0750 $P/sub
    chown 1234:5678 $P/sub/b
}
migrated() {
    same "$(zfs get -H -o value mountpoint,mounted kf/srv/m | tr '\n' ' ')" "$P yes "
    same "$(zfs get -H -o value kld:kdir-migrate kf/srv/m)" -
    manifest $P > after
    cmp before after || fail "$1: the tree changed: $(diff before after)"
    [ ! -e $O ] || fail "$1: the original was left in $O"
    [ ! -e $T ] || fail "$1: $T was left behind"
    same "$(datasets)" "kf kf/srv kf/srv/keep kf/srv/m "
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
    zfs destroy -r kf/srv/m
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
        same "$(cat out)" kf/srv/m
    else
        grep -q "already a dataset: kf/srv/m" err || fail "kill $i: the second run failed: $(cat err)"
    fi
    migrated "kill $i"
    i=$((i + 1))
done
zfs destroy -r kf/srv/m
rm -rf $P

# --- A dataset mounted inside the directory: refused, nothing touched (the
# old code copied through it and then emptied it).
mkdir -p /kf/srv/b/inner
echo top > /kf/srv/b/top
zfs create -o mountpoint=/kf/srv/b/inner kf/srv/inner
echo precious > /kf/srv/b/inner/data
refuses 1 "kf/srv/inner is mounted at /kf/srv/b/inner" kdir --migrate /kf/srv/b
same "$(cat /kf/srv/b/inner/data) $(cat /kf/srv/b/top)" "precious top"
zfs list kf/srv/b >/dev/null 2>&1 && fail "a dataset was created"
[ ! -e /kf/srv/.kdir-old-b ] || fail "the directory was moved aside"
zfs destroy kf/srv/inner
rm -rf /kf/srv/b

# --- A file held open in the directory: refused, naming the process, and
# the holder's later writes are kept (the old code migrated and the writes
# went to the deleted original).
mkdir /kf/srv/c
echo start > /kf/srv/c/log
rm -f /tmp/go
(
    exec 3>>/kf/srv/c/log
    while [ ! -e /tmp/go ]; do sleep 0.05; done
    echo late >&3
) &
holder=$!
until [ -e /proc/$holder/fd/3 ]; do sleep 0.05; done
refuses 1 "held open by pid $holder" kdir --migrate /kf/srv/c
grep -q "stop it" /tmp/refuses.err || fail "no hint: $(cat /tmp/refuses.err)"
zfs list kf/srv/c >/dev/null 2>&1 && fail "a dataset was created"
touch /tmp/go
wait $holder
same "$(cat /kf/srv/c/log | tr '\n' ' ')" "start late "
same "$(kdir --migrate /kf/srv/c)" kf/srv/c
same "$(cat /kf/srv/c/log | tr '\n' ' ')" "start late "
# A process whose working directory is inside counts too.
mkdir -p /kf/srv/w/sub
echo x > /kf/srv/w/sub/f
(cd /kf/srv/w/sub && while [ ! -e /tmp/go2 ]; do sleep 0.05; done) &
holder=$!
until [ "$(readlink /proc/$holder/cwd)" = /kf/srv/w/sub ]; do sleep 0.05; done
refuses 1 "pid $holder" kdir --migrate /kf/srv/w
touch /tmp/go2
wait $holder
same "$(kdir --migrate /kf/srv/w)" kf/srv/w

# --- Two migrations of one directory at once: the second is refused,
# naming the first; the first finishes with everything.
mkdir /kf/srv/d
i=0
while [ $i -lt 40 ]; do dd if=/dev/urandom of=/kf/srv/d/f$i bs=64k count=8 2>/dev/null; i=$((i + 1)); done
manifest /kf/srv/d > before
kdir --migrate /kf/srv/d >a.out 2>a.err &
first=$!
until zfs list kf/srv/d >/dev/null 2>&1; do sleep 0.02; done
kill -STOP $first
refuses 1 "held by pid $first (kdir --migrate /kf/srv/d)" kdir --migrate /kf/srv/d
kill -CONT $first
wait $first || fail "the first migration failed: $(cat a.err)"
same "$(cat a.out)" kf/srv/d
manifest /kf/srv/d > after
cmp before after || fail "the concurrent migration changed the tree"
# Three at once: exactly one migrates, the others are refused.
mkdir /kf/srv/e
echo e > /kf/srv/e/f
for k in 1 2 3; do kdir --migrate /kf/srv/e >e$k.out 2>e$k.err & done
wait
won=0
for k in 1 2 3; do
    if [ -s e$k.out ]; then
        same "$(cat e$k.out)" kf/srv/e
        won=$((won + 1))
    else
        grep -q "another kdir of /kf/srv/e is running: held by\|already a dataset: kf/srv/e" e$k.err || fail "run $k: $(cat e$k.err)"
    fi
done
same $won 1
same "$(cat /kf/srv/e/f)" e
bystanders
zpool destroy kf
