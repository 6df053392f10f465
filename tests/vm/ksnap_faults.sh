#!/bin/sh
# disks: 1
# ksnap under symlinks, typos, kills and concurrency (issue 17, defects 4
# and 16): paths resolve by the real path and the mount table; rollback,
# destroy and prune want a dataset's mountpoint; rollback (with
# --destroy-newer, and -r over a tree) and prune killed after every step
# finish when run again; the prune lock is root's and names its holder.
set -eu
. /kld/run/lib/assert.sh
zpool create -O mountpoint=/ks ks $KLD_VM_DISKS
# A bystander whose snapshots nothing may touch.
zfs create ks/keep
zfs snapshot ks/keep@daily-20260101-000000
zfs snapshot ks/keep@pre-20260101-000000
keep="ks/keep@daily-20260101-000000 ks/keep@pre-20260101-000000 "
bystander() { same "$(snapshots ks/keep | tr '\n' ' ')" "$keep"; }

# --- Paths through symlinks resolve to the dataset they reach.
zfs create ks/pg
echo v1 > /ks/pg/f
echo root1 > /ks/rootfile
zfs snapshot ks@pre
zfs snapshot ks/pg@pre
echo v2 > /ks/pg/f
echo root2 > /ks/rootfile
zfs snapshot ks@newer
zfs snapshot ks/pg@newer
ln -s /ks/pg /ks/pglink
ksnap rollback --destroy-newer /ks/pglink pre 2>said
grep -q "rolling ks/pg back" said || fail "$(cat said)"
same "$(cat /ks/pg/f)" v1
same "$(cat /ks/rootfile)" root2
same "$(snapshots ks/pg | tr '\n' ' ')" "ks/pg@pre "
same "$(snapshots ks | tr '\n' ' ')" "ks@pre ks@newer "
# A path that does not exist is refused, not read as its parent.
refuses 1 "/ks/pgg does not exist" ksnap rollback --destroy-newer /ks/pgg pre
refuses 1 "/ks/nosuch does not exist" ksnap destroy /ks/nosuch newer
refuses 1 "/ks/nosuch does not exist" ksnap prune --keep 0 /ks/nosuch
refuses 1 "/ks/nosuch does not exist" ksnap list /ks/nosuch
same "$(snapshots ks | tr '\n' ' ')" "ks@pre ks@newer "
# A path inside a dataset but not its mountpoint: refused for what
# destroys, accepted (and named) for what does not.
mkdir /ks/pg/sub
ln -s /ks/pg/sub /ks/sublink
refuses 1 "is inside ks/pg (mounted at /ks/pg)" ksnap rollback /ks/pg/sub pre
refuses 1 "is inside ks/pg" ksnap rollback /ks/sublink pre
mkdir /ks/dir
refuses 1 "is inside ks (mounted at /ks)" ksnap destroy /ks/dir newer
refuses 1 "is inside ks/pg" ksnap prune --keep 0 /ks/pg/sub
same "$(snapshots ks | tr '\n' ' ')" "ks@pre ks@newer "
ksnap create -l inside /ks/sublink | grep -q '^ks/pg@inside-'
ksnap list -H /ks/pglink | grep -q '^ks/pg@pre	'
kdf -H /ks/pglink | grep -q '^ks/pg	' || fail "kdf: $(kdf -H /ks/pglink)"
refuses 1 "/ks/nosuch does not exist" kdf /ks/nosuch
# The dataset's own name or mountpoint still works.
ksnap rollback --dry-run --destroy-newer ks/pg pre >/dev/null
ksnap rollback --dry-run --destroy-newer /ks/pg/ pre >/dev/null

# --- The prune lock: root's, in /run/kld; a planted /run/lock file blocks
# nothing; a second prune is told who holds it.
for day in 01 02 03; do zfs snapshot "ks/pg@daily-202601${day}-000000"; done
mkdir -p /run/lock
exec 9>/run/lock/ksnap-prune.lock
flock -n 9
ksnap prune --label daily --keep 2 ks/pg >pruned
same "$(cat pruned)" ks/pg@daily-20260101-000000
flock -u 9
exec 9>&-
same "$(stat -c '%a %U' /run/kld)" "700 root"
exec 8>/run/kld/ksnap-prune.lock
flock -n 8
refuses 1 "another ksnap prune is running" ksnap prune --keep 1 ks/pg
grep -q "held by" /tmp/refuses.err || fail "$(cat /tmp/refuses.err)"
flock -u 8
exec 8>&-

# --- Four prunes at once: every snapshot is destroyed once, by one of
# them; the others are refused or find nothing left.
zfs create ks/p
i=10
while [ $i -lt 40 ]; do zfs snapshot "ks/p@hourly-20260101-0000$i"; i=$((i + 1)); done
for k in 1 2 3 4; do ksnap prune --label hourly --keep 2 ks/p >p$k.out 2>p$k.err & done
wait
cat p1.out p2.out p3.out p4.out | sort > destroyed
same "$(wc -l < destroyed)" 28
same "$(sort -u destroyed | wc -l)" 28
for k in 1 2 3 4; do
    [ -s p$k.err ] && { grep -q "another ksnap prune is running" p$k.err || fail "prune $k: $(cat p$k.err)"; }
done
same "$(snapshots ks/p | tr '\n' ' ')" "ks/p@hourly-20260101-000038 ks/p@hourly-20260101-000039 "
bystander

# --- ksnap prune killed after every step: the next run finishes.
setup_prune() {
    zfs destroy -r ks/p 2>/dev/null || true
    zfs create ks/p
    for day in 01 02 03 04; do zfs snapshot "ks/p@daily-202601${day}-000000"; done
    zfs snapshot ks/p@mine
}
setup_prune
total=$(steps ksnap prune --label daily --keep 1 ks/p)
echo "ksnap prune: $total steps"
i=1
while [ "$i" -le "$total" ]; do
    setup_prune
    killed_after "$i" ksnap prune --label daily --keep 1 ks/p
    ksnap prune --label daily --keep 1 ks/p >/dev/null || fail "kill $i: the second prune failed"
    same "$(snapshots ks/p | tr '\n' ' ')" "ks/p@daily-20260104-000000 ks/p@mine "
    bystander
    i=$((i + 1))
done

# --- ksnap rollback --destroy-newer killed after every step.
setup_rollback() {
    zfs destroy -r ks/r 2>/dev/null || true
    zfs create ks/r
    echo old > /ks/r/f
    zfs snapshot ks/r@base
    zfs snapshot ks/r@pre-20260101-000000
    echo new > /ks/r/f
    zfs snapshot ks/r@later1
    zfs snapshot ks/r@later2
}
setup_rollback
total=$(steps ksnap rollback --destroy-newer /ks/r pre)
echo "ksnap rollback --destroy-newer: $total steps"
i=1
while [ "$i" -le "$total" ]; do
    setup_rollback
    killed_after "$i" ksnap rollback --destroy-newer /ks/r pre
    ksnap rollback --destroy-newer /ks/r pre 2>/dev/null || fail "kill $i: the second rollback failed"
    same "$(cat /ks/r/f)" old
    same "$(snapshots ks/r | tr '\n' ' ')" "ks/r@base ks/r@pre-20260101-000000 "
    bystander
    i=$((i + 1))
done

# --- ksnap rollback -r --destroy-newer of a tree killed after every step:
# the next run rolls the whole tree back and leaves it all mounted.
tree="ks/t ks/t/x ks/t/x/y"
setup_tree() {
    zfs destroy -r ks/t 2>/dev/null || true
    zfs create ks/t
    zfs create ks/t/x
    zfs create ks/t/x/y
    for d in $tree; do echo old > "/$d/f"; done
    zfs snapshot -r ks/t@tree-20260101-000000
    for d in $tree; do echo new > "/$d/f"; done
    zfs snapshot ks/t/x/y@later
}
setup_tree
total=$(steps ksnap rollback -r --destroy-newer ks/t tree)
echo "ksnap rollback -r: $total steps"
cat /tmp/steps.trace
i=1
while [ "$i" -le "$total" ]; do
    setup_tree
    killed_after "$i" ksnap rollback -r --destroy-newer ks/t tree
    ksnap rollback -r --destroy-newer ks/t tree 2>err || fail "kill $i: the second rollback failed: $(cat err)"
    for d in $tree; do
        same "$(zfs get -H -o value mounted "$d")" yes
        same "$(cat "/$d/f")" old
    done
    same "$(snapshots ks/t/x/y | tr '\n' ' ')" "ks/t/x/y@tree-20260101-000000 "
    bystander
    i=$((i + 1))
done
# Two tree rollbacks at once: each runs whole (one after the other) or is
# refused naming the other; the tree ends rolled back and mounted.
echo newer > /ks/t/x/f
ksnap rollback -r ks/t tree >r1.out 2>r1.err &
r1=$!
ksnap rollback -r ks/t tree >r2.out 2>r2.err &
r2=$!
for pid in $r1 $r2; do
    k=1
    [ $pid = $r1 ] || k=2
    if ! wait $pid; then
        grep -q "another ksnap rollback in pool ks is running" r$k.err || fail "rollback $k: $(cat r$k.err)"
    fi
done
for d in $tree; do
    same "$(zfs get -H -o value mounted "$d")" yes
    same "$(cat "/$d/f")" old
done
zpool destroy ks
