#!/bin/sh
# disks: 1
# kdf: ZFS's space accounting per dataset, snapshot counts, clone origins,
# depth and sorting, per-pool totals, --snapshots, and the output modes.
set -eu
. /kld/run/lib/assert.sh
zpool create -O mountpoint=/kd -O compression=lz4 kd $KLD_VM_DISKS
zfs create kd/a
zfs create kd/a/deep
zfs create -o compression=off kd/raw
zfs create -V 32M kd/vol
dd if=/dev/urandom of=/kd/a/blob bs=64k count=16 2>/dev/null
zfs snapshot kd/a@one
rm /kd/a/blob
dd if=/dev/urandom of=/kd/a/blob2 bs=64k count=4 2>/dev/null
zfs snapshot kd/a@two
zfs snapshot kd/a/deep@x
head -c 1048576 /dev/zero > /kd/raw/zeros
zfs clone kd/a@one kd/c
# Let the pool settle: frees are deferred by up to two transaction groups,
# and avail moves until they are done (nothing writes after this).
sync
zpool sync kd && zpool sync kd && zpool sync kd

# Every number is ZFS's own: compare with zfs list -Hp.
kdf -H -p -r kd > out
for ds in kd kd/a kd/a/deep kd/raw kd/vol kd/c; do
    line=$(grep "^$ds	" out) || fail "no row for $ds: $(cat out)"
    want=$(zfs list -H -p -o name,used,avail,refer,usedbysnapshots,usedbychildren,usedbyrefreservation "$ds")
    same "$(echo "$line" | cut -f1-7)" "$want"
done
same "$(grep '^kd/a	' out | cut -f9)" 2
same "$(grep '^kd/a/deep	' out | cut -f9)" 1
same "$(grep '^kd/c	' out | cut -f10)" "kd/a@one"
[ "$(grep '^kd/a	' out | cut -f5)" -gt 900000 ] || fail "kd/a's snapshot space: $(grep '^kd/a	' out)"
[ "$(grep '^kd/vol	' out | cut -f7)" -gt 0 ] || fail "the volume's refreservation"

# Depth, and snapshot counts at the deepest level shown.
same "$(kdf -H -d 1 kd | cut -f1 | tr '\n' ' ')" "kd kd/a kd/c kd/raw kd/vol "
same "$(kdf -H -d 0 kd/a | cut -f1,9)" "kd/a	2"
same "$(kdf -H kd/a/deep | cut -f9)" 1
# Sorting: largest first.
same "$(kdf -H -s used -r kd/a | head -1 | cut -f1)" kd/a
kdf -H -p -s snaps -r kd | head -1 | grep -q '^kd/a	'
kdf -H -s name -r kd | cut -f1 | sort -c
refuses 2 "invalid value" kdf -s size kd
# No target: every pool; --pool.
kdf -H | grep -q '^kd/a/deep	'
kdf -H --pool kd | grep -q '^kd/vol	'
refuses 1 "pool nope is not imported" kdf --pools --pool nope
# Paths resolve to datasets.
same "$(kdf -H /kd/a/blob2 | cut -f1)" kd/a
refuses 1 "is not on a ZFS dataset" kdf /proc

# Pool totals: on screen below the table, and alone with --pools.
kdf kd/a | grep -q '^POOL *SIZE *ALLOC *FREE *CAP *HEALTH$'
line=$(kdf --pools -H -p --pool kd)
same "$(echo "$line" | cut -f1,6)" "kd	ONLINE"
same "$(echo "$line" | cut -f2)" "$(zpool list -H -p -o size kd)"

# --snapshots: each snapshot's unique and written space.
kdf --snapshots -H -p kd/a > snaps
same "$(cut -f1 snaps | tr '\n' ' ')" "kd/a@one kd/a@two "
same "$(grep '^kd/a@one' snaps | cut -f2)" "$(zfs get -H -p -o value used kd/a@one)"
same "$(grep '^kd/a@one' snaps | cut -f6)" kd/c
refuses 2 "needs a TARGET" kdf --snapshots

# Human and JSON.
kdf kd/raw | head -1 | grep -q '^NAME *USED *AVAIL *REFER *SNAPS *CHILD *REFRESERV *RATIO *NSNAP *ORIGIN$'
kdf kd/raw | grep -q '1.00x'
kdf --json -r kd > json
grep -q '"apiVersion": *"kld/v1"' json
grep -q '"kind": *"DatasetSpaceList"' json
grep -q '"origin": *"kd/a@one"' json
refuses 2 "invalid dataset name" kdf 'kd/a;ls'
zpool destroy kd
