#!/bin/sh
# disks: 1
# ksnap create and list: one transaction group, paths and names, never
# overwriting, refusals that change nothing, and the output modes.
set -eu
. /kld/run/lib/assert.sh
zpool create -O mountpoint=/ks ks $KLD_VM_DISKS
zfs create ks/a
zfs create ks/b
zfs create ks/a/child
zfs create -o mountpoint=/srv/db ks/db

# Several targets, by name and by path, in one transaction group.
ksnap create -l before ks/a /ks/b /srv/db/ > created
[ "$(wc -l < created)" -eq 3 ] || fail "expected 3 names: $(cat created)"
grep -q '^ks/a@before-[0-9]\{8\}-[0-9]\{6\}$' created || fail "bad name: $(cat created)"
grep -q '^ks/db@before-' created || fail "the path /srv/db/ did not resolve to ks/db"
txgs=$(zfs get -H -p -o value createtxg $(cat created) | sort -u | wc -l)
same "$txgs" 1
[ -z "$(snapshots ks/a/child)" ] || fail "without -r the child was snapshotted"

# -r: the whole tree, one transaction group.
ksnap create -r -l tree ks/a > created
tree=$(zfs list -H -o name -t snapshot -r ks/a | grep '@tree-')
same "$(echo "$tree" | wc -l)" 2
same "$(zfs get -H -p -o value createtxg $tree | sort -u | wc -l)" 1

# -r over two trees: still one transaction group.
ksnap create -r -l two ks/a ks/b > created
two=$(zfs list -H -o name -t snapshot -r ks/a ks/b | grep '@two-')
same "$(echo "$two" | wc -l)" 3
same "$(zfs get -H -p -o value createtxg $two | sort -u | wc -l)" 1
# A name taken on one dataset of a tree: nothing at all is taken.
zfs snapshot ks/a/child@clash-20260101-120000
before=$(zfs list -H -o name -t snapshot -r ks | wc -l)
refuses 1 "already exists: .*ks/a/child@clash-20260101-120000" \
    ksnap create -r -l clash --at 20260101-120000 ks/a ks/b
grep -q "nothing was taken" /tmp/refuses.err || fail "$(cat /tmp/refuses.err)"
same "$(zfs list -H -o name -t snapshot -r ks | wc -l)" "$before"
refuses 2 "invalid time" ksnap create --at 2026-01-01 ks/b

# The seeds' short form.
ksnap ks/b nightly | grep -q '^ks/b@nightly-'
ksnap /ks/b > short
grep -q '^ks/b@manual-' short

# Never overwrite: the same name twice is refused.
ksnap create -l dup --at 20260102-000000 ks/b > created
same "$(cat created)" ks/b@dup-20260102-000000
refuses 1 "already exists" ksnap create -l dup --at 20260102-000000 ks/b
count=$(zfs list -H -o name -t snapshot ks/b | wc -l)
refuses 2 "invalid label" ksnap create -l 'bad label;' ks/b
refuses 2 "invalid dataset name" ksnap create 'ks/b;reboot'
refuses 2 "invalid dataset name" ksnap create 'ks/../etc'
refuses 1 "does not exist" ksnap create ks/nope
refuses 1 "is not on a ZFS dataset" ksnap create /proc
refuses 2 "invalid label" ksnap create -l "$(printf 'x%.0s' $(seq 70))" ks/b
same "$(zfs list -H -o name -t snapshot ks/b | wc -l)" "$count"

# --dry-run prints the plan and changes nothing.
before=$(zfs list -H -o name -t snapshot -r ks | wc -l)
ksnap create --dry-run ks/a ks/b > plan
grep -q 'lzc_snapshot ks/a@manual-.* ks/b@manual-.* (one transaction group)' plan || fail "plan: $(cat plan)"
same "$(zfs list -H -o name -t snapshot -r ks | wc -l)" "$before"

# list: human, -H, -p, --json.
ksnap list ks/a | head -1 | grep -q '^SNAPSHOT *CREATED *USED *REFER *WRITTEN *HOLDS *CLONES$'
ksnap list -r ks/a | grep -q 'ks/a/child@tree-'
[ "$(ksnap list ks/a | grep -c 'ks/a/child')" -eq 0 ] || fail "list without -r showed the child"
ksnap list -H -p ks/a | head -1 | awk -F '\t' 'NF != 7 { exit 1 } $2 !~ /^[0-9]+$/ { exit 1 }'
ksnap list --json ks/a > json
grep -q '"apiVersion": *"kld/v1"' json
grep -q '"kind": *"SnapshotList"' json
grep -q '"name": *"ks/a@before-' json
ksnap list | grep -q 'ks/db@before-'
refuses 2 "" ksnap list --json -H ks/a
zpool destroy ks
