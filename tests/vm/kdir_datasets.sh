#!/bin/sh
# disks: 1
# kdir on an installer-like layout (a boot environment at /, canmount=off
# containers), imported under an altroot: names that follow paths, presets,
# -p all or nothing, the boot-environment guard, refusals, and --migrate,
# including one interrupted half-way.
set -eu
. /kld/run/lib/assert.sh
R=/mnt/kx
zpool create -R $R -O mountpoint=none -O canmount=off -O compression=off kx $KLD_VM_DISKS
zfs create -o mountpoint=none -o canmount=off kx/ROOT
zfs create -o mountpoint=/ -o canmount=noauto kx/ROOT/debian
zfs mount kx/ROOT/debian
zfs create -o mountpoint=/var -o canmount=off kx/var
zfs create kx/var/log
zfs create -o mountpoint=/srv kx/srv

# A dataset whose name follows the path, with kdir's defaults.
same "$(kdir $R/srv/db)" kx/srv/db
same "$(zfs get -H -o value,source mountpoint kx/srv/db)" "$R/srv/db	inherited from kx/srv"
same "$(zfs get -H -o value,source compression kx/srv/db)" "lz4	local"
same "$(zfs get -H -o value atime kx/srv/db)" off
same "$(zfs get -H -o value mounted kx/srv/db)" yes
# Presets, and -o overriding them.
kdir --preset postgres -o logbias=latency $R/srv/pg >/dev/null
same "$(zfs get -H -p -o value recordsize,logbias,xattr kx/srv/pg | tr '\n' ' ')" "8192 latency sa "
kdir --preset media $R/srv/media >/dev/null
same "$(zfs get -H -p -o value recordsize kx/srv/media)" 1048576

# Below a canmount=off container (/var is not a mount of its own).
refuses 1 "add -p" kdir $R/var/lib/app
same "$(kdir -p $R/var/lib/app | tr '\n' ' ')" "kx/var/lib kx/var/lib/app "
same "$(zfs get -H -o value mountpoint kx/var/lib/app)" "$R/var/lib/app"

# -p is all or nothing: the leaf fails, the intermediates are destroyed.
refuses 1 "destroyed again" kdir -p -o volsize=1M $R/srv/a/b/c
zfs list kx/srv/a 2>/dev/null && fail "kx/srv/a was left behind"

# The boot environment guard, and --parent.
refuses 1 "boot environment kx/ROOT/debian" kdir $R/data
same "$(kdir --parent kx $R/data)" kx/data
same "$(zfs get -H -o value,source mountpoint kx/data)" "$R/data	local"
same "$(zfs get -H -o value mounted kx/data)" yes

# Refusals change nothing.
count=$(zfs list -H -o name | wc -l)
refuses 1 "already a dataset: kx/srv/db" kdir $R/srv/db
refuses 2 "must be absolute" kdir srv/x
refuses 2 "invalid dataset name" kdir "$R/srv/x;reboot"
refuses 2 "invalid dataset name" kdir "$R/srv/$(printf 'x%.0s' $(seq 260))"
refuses 1 "rootfs\|tmpfs\|not on ZFS\|not under any" kdir /tmp/nowhere
refuses 2 "conflicts with PATH" kdir -o mountpoint=/x $R/srv/y
refuses 2 "invalid property" kdir -o compresion=lz4 $R/srv/y
echo hello > $R/srv/file
refuses 1 "is not a directory" kdir $R/srv/file
mkdir -p $R/srv/full/sub
echo keep > $R/srv/full/sub/data
refuses 1 "not empty" kdir $R/srv/full
kdir --dry-run $R/srv/planned | grep -q "^zfs create -o compression=lz4 -o atime=off kx/srv/planned$"
same "$(zfs list -H -o name | wc -l)" "$count"

# --migrate: copy, verify, swap; nothing lost.
mkdir -p $R/srv/full/deep/er
ln -s sub/data $R/srv/full/link
chmod 0750 $R/srv/full/deep
chown 1234:5678 $R/srv/full/sub/data
manifest() { (cd "$1" && find . | sort | while read -r f; do stat -c '%n %F %a %u:%g %s' "$f"; done; find . -type f | sort | xargs sha256sum); }
manifest $R/srv/full > before
kdir --migrate --dry-run $R/srv/full | grep -q '^cp -a '
same "$(kdir --migrate $R/srv/full)" kx/srv/full
same "$(zfs get -H -o value mounted kx/srv/full)" yes
manifest $R/srv/full > after
cmp before after || fail "migration changed the tree: $(diff before after)"
[ ! -e $R/srv/.kdir-old-full ] || fail "the original was left behind"
same "$(zfs get -H -o value kld:kdir-migrate kx/srv/full)" -

# An interrupted --migrate loses nothing, and a second run finishes it.
mkdir -p $R/srv/big
i=0
while [ $i -lt 100 ]; do dd if=/dev/urandom of=$R/srv/big/f$i bs=64k count=16 2>/dev/null; i=$((i + 1)); done
manifest $R/srv/big > before
kdir --migrate $R/srv/big > /dev/null 2>&1 &
pid=$!
n=0
until zfs list kx/srv/big >/dev/null 2>&1; do
    n=$((n + 1))
    [ $n -lt 600 ] || fail "the migration never started"
    sleep 0.05
done
# Interrupted as Ctrl-C or a crash would: kdir and the copy it runs.
kill_tree $pid
wait $pid || true
[ -d $R/srv/big ] || [ -d $R/srv/.kdir-old-big ] || fail "the original directory is gone"
kdir --migrate $R/srv/big > out 2> err || fail "the second run failed: $(cat err)"
grep -q "interrupted migration" err || fail "the leftover was not noticed: $(cat err)"
same "$(cat out)" kx/srv/big
manifest $R/srv/big > after
cmp before after || fail "the resumed migration changed the tree"
zpool export kx
