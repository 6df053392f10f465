#!/bin/sh
# disks: 1
# kbe on real OpenZFS: create (from a BE, a BE snapshot, an adopted
# zfs receive target), activate with hooks, rollback, rename, mount,
# destroy with promotion, prune, refusals that change nothing, a create that
# fails half-way and leaves nothing, and the output modes.
set -eu
. /kld/run/lib/assert.sh
zpool create -R /kb -O mountpoint=none -O canmount=off kb $KLD_VM_DISKS
zfs create -o canmount=off -o mountpoint=none kb/ROOT
zfs create -o canmount=noauto -o mountpoint=/ kb/ROOT/a
zfs create -o canmount=noauto kb/ROOT/a/var
zfs create -o canmount=noauto -o compression=zstd kb/ROOT/a/var/lib
zfs create -o mountpoint=/home kb/home
zpool set bootfs=kb/ROOT/a kb
mkdir -p /mnt/a /mnt/b
kbe --pool kb mount a /mnt/a
mkdir -p /mnt/a/etc /mnt/a/var/lib/dpkg
echo a > /mnt/a/etc/marker
same "$(grep -c ' /mnt/a' /proc/mounts)" 3
kbe --pool kb unmount a
same "$(grep -c ' /mnt/a' /proc/mounts)" 0

# list: flags and the scripted form.
kbe --pool kb list -H -p > out
same "$(cut -f1,2,3 out)" "$(printf 'a\tR\t-')"
kbe --root kb/ROOT list --json > out
grep -q '"apiVersion": *"kld/v1"' out || fail "no apiVersion: $(cat out)"
grep -q '"kind": *"BootEnvironmentList"' out || fail "no kind"
grep -q '"nextBoot": *true' out || fail "no nextBoot"

# Not booted from a BE here: current says so, create without FROM refuses.
refuses 1 'not booted from a boot environment' kbe --pool kb current
refuses 1 'say which to create from' kbe --pool kb create c
refuses 2 'invalid boot environment name' kbe --pool kb create 'x;reboot' a
refuses 2 'invalid boot environment name' kbe --pool kb create -- -rf a
refuses 1 'no boot environment nope' kbe --pool kb create c nope
refuses 1 'cannot find the boot environment root' kbe --pool nopool list

# dry run: the exact steps, nothing done.
kbe --pool kb create --dry-run b a > plan
grep -q '^lzc_snapshot kb/ROOT/a@kbe-b kb/ROOT/a/var@kbe-b kb/ROOT/a/var/lib@kbe-b' plan \
    || fail "plan: $(cat plan)"
same "$(grep -c '^lzc_clone' plan)" 3
grep -q "^zfs set 'kld:journal=create b kb/ROOT/a@kbe-b' kb/ROOT" plan || fail "plan: $(cat plan)"
[ -z "$(snapshots kb/ROOT/a)" ] || fail "dry run took a snapshot"
refuses 1 'does not exist' zfs list kb/ROOT/b

# create b from a: one transaction group, children, the properties a BE needs.
kbe --pool kb create b a 2> notes
grep -q 'boot it with: kbe activate b' notes || fail "notes: $(cat notes)"
same "$(zfs get -H -o value origin kb/ROOT/b)" kb/ROOT/a@kbe-b
same "$(zfs get -H -o value origin kb/ROOT/b/var/lib)" kb/ROOT/a/var/lib@kbe-b
same "$(zfs get -H -o value mountpoint,canmount kb/ROOT/b | tr "\n" " ")" "/kb noauto "
same "$(zfs get -H -o value canmount kb/ROOT/b/var)" noauto
same "$(zfs get -H -o value compression kb/ROOT/b/var/lib)" zstd
same "$(zfs get -H -p -o value createtxg kb/ROOT/a@kbe-b kb/ROOT/a/var/lib@kbe-b | sort -u | wc -l)" 1
refuses 1 'already exists' kbe --pool kb create b a
# A snapshot left with the name create would take: refused, nothing made.
zfs snapshot kb/ROOT/a/var@kbe-clash
refuses 1 'the 1 step(s) before it were undone' kbe --pool kb create clash a
same "$(zfs get -H -o value kld:journal kb/ROOT)" -
refuses 1 'does not exist' zfs list kb/ROOT/clash
[ -z "$(snapshots kb/ROOT/a | grep clash)" ] || fail "a partial snapshot was left"
zfs destroy kb/ROOT/a/var@kbe-clash

# activate with hooks; a failing hook undoes everything and keeps bootfs.
mkdir /tmp/hooks
printf '#!/bin/sh\necho "$@ $KLD_BE_NAME" >> /tmp/hook.log\n' > /tmp/hooks/10-record
chmod +x /tmp/hooks/10-record
kbe --pool kb --hooks-dir /tmp/hooks activate b 2> notes
same "$(zpool get -H -o value bootfs kb)" kb/ROOT/b
same "$(zfs get -H -o value kld:previous-be kb/ROOT)" a
same "$(cat /tmp/hook.log)" "activate kb/ROOT/b kb/ROOT/a b"
grep -q 'kbe rollback. returns to a' notes || fail "notes: $(cat notes)"
printf '#!/bin/sh\necho bootloader broke >&2\nexit 1\n' > /tmp/hooks/20-fail
chmod +x /tmp/hooks/20-fail
refuses 1 'bootloader broke' kbe --pool kb --hooks-dir /tmp/hooks set-default a
same "$(zpool get -H -o value bootfs kb)" kb/ROOT/b
same "$(zfs get -H -o value kld:previous-be kb/ROOT)" a
same "$(tail -n 1 /tmp/hook.log)" "activate kb/ROOT/b kb/ROOT/a b"
rm /tmp/hooks/20-fail
kbe --pool kb list -H > out
same "$(cut -f1,2 out | tr '\n' ' ')" "$(printf 'a\tB b\tR ')"

# The next-boot and rollback BEs are protected.
refuses 1 'the pool boots it next' kbe --pool kb destroy b
refuses 1 'rollback target' kbe --pool kb rename a a2
refuses 1 'the pool boots it next' kbe --pool kb rename b bb

# rollback: back to a, and b becomes the rollback target.
kbe --pool kb rollback
same "$(zpool get -H -o value bootfs kb)" kb/ROOT/a
same "$(zfs get -H -o value kld:previous-be kb/ROOT)" b

# mount b: its children below it, a's files in it; destroy refuses meanwhile.
kbe --pool kb mount b /mnt/b
same "$(cat /mnt/b/etc/marker)" a
grep -q '^kb/ROOT/b/var /mnt/b/var zfs' /proc/mounts || fail "b/var not mounted"
echo b > /mnt/b/etc/only-b
kbe --pool kb list -H > out
grep -q "^b	B	/mnt/b	" out || fail "list: $(cat out)"
refuses 1 'is already mounted' kbe --pool kb mount b /mnt/a
kbe --pool kb unmount b
refuses 1 'is not mounted' kbe --pool kb unmount b
refuses 1 'not an existing directory' kbe --pool kb mount b /nonexistent

# destroy with a dependent: c is cloned from b, then b is destroyed.
kbe --pool kb create c b
kbe --pool kb activate c
kbe --pool kb activate a
kbe --pool kb destroy --dry-run b > plan
grep -q '^zfs promote kb/ROOT/c$' plan || fail "plan: $(cat plan)"
zfs list -H kb/ROOT/b > /dev/null
kbe --pool kb destroy b
refuses 1 'does not exist' zfs list kb/ROOT/b
same "$(zfs get -H -o value origin kb/ROOT/c)" kb/ROOT/a@kbe-b
[ -z "$(snapshots kb/ROOT/c)" ] || fail "c kept b's snapshot: $(snapshots kb/ROOT/c)"
kbe --pool kb mount c /mnt/b
same "$(cat /mnt/b/etc/only-b)" b
kbe --pool kb unmount c

# rename, and destroy removes the origin snapshot nothing else uses.
kbe --pool kb create d a
kbe --pool kb rename d d2
zfs list -H kb/ROOT/d2/var/lib > /dev/null
kbe --pool kb destroy d2
refuses 1 'does not exist' zfs list kb/ROOT/d2
refuses 1 'does not exist' zfs list kb/ROOT/a@kbe-d
zfs list -H kb/ROOT/a@kbe-b > /dev/null

# A create that fails half-way (the pool cannot hold a second copy of a
# child's reservation) leaves nothing behind.
zfs create -o canmount=noauto -o mountpoint=/ kb/ROOT/r
for c in c1 c2 c3 c4; do zfs create -o canmount=noauto kb/ROOT/r/$c; done
zfs create -o canmount=noauto -o reservation=600M kb/ROOT/r/c5
before=$(zfs list -H -o name -t all -r kb | sort)
refuses 1 'the 3 step(s) before it were undone' kbe --pool kb create r2 r
same "$(zfs list -H -o name -t all -r kb | sort)" "$before"
zfs destroy -r kb/ROOT/r

# Adopting a zfs receive target, by dataset (its newest common snapshot) and
# by snapshot; the received dataset is left as it was.
zfs snapshot -r kb/ROOT/a@golden
zfs create -o canmount=off kb/incoming
zfs send -R kb/ROOT/a@golden | zfs receive -u kb/incoming/v43
zfs destroy -r kb/ROOT/a@golden
received=$(zfs list -H -o name -t all -r kb/incoming)
kbe --pool kb create v43 kb/incoming/v43
same "$(zfs get -H -o value origin kb/ROOT/v43)" kb/incoming/v43@golden
same "$(zfs get -H -o value origin kb/ROOT/v43/var)" kb/incoming/v43/var@golden
same "$(zfs list -H -o name -t all -r kb/incoming)" "$received"
kbe --pool kb create v43b kb/incoming/v43@golden
kbe --pool kb mount v43 /mnt/b
same "$(cat /mnt/b/etc/marker)" a
kbe --pool kb unmount v43
kbe --pool kb activate v43
same "$(zpool get -H -o value bootfs kb)" kb/ROOT/v43
kbe --pool kb activate a

# prune: by count and age; dry run; the protected are kept.
kbe --pool kb create p1 a
kbe --pool kb create p2 a
kbe --pool kb create p3 a
kbe --pool kb prune --older-than 1h
same "$(kbe --pool kb list -H | wc -l)" 7
kbe --pool kb prune --keep 2 --dry-run > plan
same "$(kbe --pool kb list -H | wc -l)" 7
grep -q '^zfs destroy -r kb/ROOT/v43b$' plan || fail "plan: $(cat plan)"
kbe --pool kb prune --keep 2 > pruned 2> kept
same "$(kbe --pool kb list -H | cut -f1 | tr '\n' ' ')" "a p2 p3 v43 "
grep -q 'keeping a: ' kept || fail "kept: $(cat kept)"
grep -q 'keeping v43: .*rollback target' kept || fail "kept: $(cat kept)"
refuses 2 'required' kbe --pool kb prune

# list -v: each BE's datasets, the shared ones, and the package database
# warning when /var/lib is shared.
kbe --pool kb list -v > out 2> warn
grep -q 'kb/ROOT/a/var/lib  *a  */var/lib' out || fail "list -v: $(cat out)"
grep -q 'kb/home  *(shared)  */home' out || fail "list -v: $(cat out)"
[ ! -s warn ] || fail "unexpected warning: $(cat warn)"
zfs create -o mountpoint=/var/lib -o canmount=noauto kb/varlib
zfs set canmount=on kb/varlib
kbe --pool kb list -v > out 2> warn
grep -q 'warning: kb/varlib (mounted at /var/lib) is shared .*package' warn \
    || fail "no warning: $(cat warn)"
zpool destroy kb
