#!/bin/sh
# disks: 1
# ksnap rollback (labels, newer snapshots, clones, whole trees all or
# nothing), destroy (batched, refusals), diff, and prune (only ksnap's own
# names, exact labels, holds and clones skipped, a lock).
set -eu
. /kld/run/lib/assert.sh
zpool create -O mountpoint=/kr kr $KLD_VM_DISKS
zfs create kr/a

# rollback by label picks the newest with exactly that label.
echo v1 > /kr/a/f
zfs snapshot kr/a@pre-20260101-000000
echo v2 > /kr/a/f
zfs snapshot kr/a@pre-20260102-000000
zfs snapshot kr/a@prefix-20260103-000000
echo v3 > /kr/a/f
refuses 1 "newer snapshots exist: kr/a@prefix-20260103-000000" ksnap rollback kr/a pre
same "$(cat /kr/a/f)" v3
ksnap rollback kr/a pre --destroy-newer 2>said
grep -q 'kr/a@pre-20260102-000000 (the newest with label "pre")' said || fail "$(cat said)"
same "$(cat /kr/a/f)" v2
same "$(snapshots kr/a | tr '\n' ' ')" "kr/a@pre-20260101-000000 kr/a@pre-20260102-000000 "
refuses 1 'has no snapshot "pr"' ksnap rollback kr/a pr

# A full name works; newer snapshots with clones are never destroyed.
zfs clone kr/a@pre-20260102-000000 kr/clone
refuses 1 "newer snapshots have clones" ksnap rollback --destroy-newer kr/a kr/a@pre-20260101-000000
zfs list kr/clone >/dev/null
zfs destroy kr/clone
refuses 2 "is not a snapshot of kr/a" ksnap rollback kr/a kr/b@x

# --dry-run changes nothing.
echo v4 > /kr/a/f
ksnap rollback --dry-run --destroy-newer kr/a pre-20260101-000000 | grep -q '^zfs rollback -r kr/a@pre-20260101-000000$'
same "$(cat /kr/a/f)" v4

# Whole tree: all or nothing.
zfs create kr/t
zfs create kr/t/x
zfs create kr/t/x/y
for d in kr/t kr/t/x kr/t/x/y; do echo old > "/$d/f"; done
ksnap create -r -l tree kr/t >/dev/null
snap=$(snapshots kr/t | grep @tree- | cut -d@ -f2)
for d in kr/t kr/t/x kr/t/x/y; do echo new > "/$d/f"; done
zfs snapshot kr/t/x/y@later
refuses 1 "newer than kr/t/x/y@$snap exist" ksnap rollback -r kr/t "$snap"
for d in kr/t kr/t/x kr/t/x/y; do same "$(cat "/$d/f")" new; done
zfs mount | grep -q ' /kr/t/x/y$' || fail "a failed tree rollback left kr/t/x/y unmounted"
ksnap rollback -r --destroy-newer kr/t tree
for d in kr/t kr/t/x kr/t/x/y; do same "$(cat "/$d/f")" old; done
[ -z "$(snapshots kr/t/x/y | grep later)" ] || fail "later was not destroyed"
# A descendant without the snapshot stops the whole tree.
zfs create kr/t/z
for d in kr/t kr/t/x; do echo new > "/$d/f"; done
refuses 1 "kr/t/z@$snap does not exist" ksnap rollback -r kr/t "$snap"
same "$(cat /kr/t/f)" new

# destroy: batched, and refusals that change nothing.
zfs create kr/d
for i in 1 2 3 4; do zfs snapshot kr/d@s$i; done
zfs hold keep kr/d@s4
refuses 1 "kr/d@s4 is held" ksnap destroy kr/d s1 s4
refuses 1 "does not exist" ksnap destroy kr/d s1 s9
refuses 2 "invalid snapshot name" ksnap destroy kr/d 's1%s3'
same "$(snapshots kr/d | wc -l)" 4
ksnap destroy --dry-run kr/d s1 kr/d@s2 | grep -q 'lzc_destroy_snaps kr/d@s1 kr/d@s2'
ksnap destroy kr/d s1 kr/d@s2 >/dev/null
same "$(snapshots kr/d | tr '\n' ' ')" "kr/d@s3 kr/d@s4 "

# diff
zfs create kr/f
echo a > /kr/f/old
zfs snapshot kr/f@base
echo b > /kr/f/new
mv /kr/f/old /kr/f/moved
ksnap diff -H kr/f base > d
grep -q '^added	F	/kr/f/new	-$' d || fail "$(cat d)"
grep -q '^renamed	F	/kr/f/old	/kr/f/moved$' d || fail "$(cat d)"
ksnap diff --json /kr/f base | grep -q '"kind": *"SnapshotDiff"'

# prune: only ksnap's names, exact labels, holds and clones skipped.
zfs create kr/p
for day in 01 02 03 04 05; do zfs snapshot "kr/p@daily-202601${day}-000000"; done
zfs snapshot kr/p@dailyx-20260106-000000
zfs snapshot kr/p@autosnap_2026-01-01_00:00:00_daily
zfs snapshot kr/p@mine
zfs hold keep kr/p@daily-20260102-000000
zfs clone kr/p@daily-20260103-000000 kr/pclone
ksnap prune --dry-run --label daily --keep 1 kr/p > plan 2>skipped
grep -q 'lzc_destroy_snaps kr/p@daily-20260101-000000 kr/p@daily-20260104-000000' plan || fail "$(cat plan)"
same "$(snapshots kr/p | wc -l)" 8
ksnap prune --label daily --keep 1 kr/p > pruned 2>skipped
grep -q 'skipped kr/p@daily-20260102-000000 (held)' skipped
grep -q 'skipped kr/p@daily-20260103-000000 (has clones)' skipped
same "$(snapshots kr/p | tr '\n' ' ')" "kr/p@daily-20260102-000000 kr/p@daily-20260103-000000 kr/p@daily-20260105-000000 kr/p@dailyx-20260106-000000 kr/p@autosnap_2026-01-01_00:00:00_daily kr/p@mine "
# --older-than goes by when a snapshot was taken (ZFS's creation), not by
# the stamp in its name.
ksnap prune --older-than 1d kr/p >/dev/null 2>&1
same "$(snapshots kr/p | wc -l)" 6
sleep 6
ksnap kr/p fresh >/dev/null
ksnap prune --older-than 5s kr/p >/dev/null 2>&1
same "$(snapshots kr/p | grep -c daily-)" 2
same "$(snapshots kr/p | grep -c 'dailyx\|fresh-')" 1
refuses 2 "required" ksnap prune kr/p
refuses 2 "cannot be used with" ksnap prune --keep 1 --older-than 1d kr/p
# The lock: a prune while another holds it is refused. It is root's, in
# /run/kld (no longer in the world-writable /run/lock).
mkdir -p /run/kld
chmod 0700 /run/kld
exec 9>/run/kld/ksnap-prune.lock
flock -n 9
refuses 1 "another ksnap prune is running" ksnap prune --keep 1 kr/p
flock -u 9
zpool destroy kr
