# Run in the busybox VM: puts the root tree (a tar archive on /dev/vdb) on a
# new pool on /dev/vda as boot environment rpool/ROOT/a, the pool's bootfs,
# with a shared dataset for /home as the seeds' installer makes, and exports
# the pool cleanly.
zpool create -f -o ashift=12 -o cachefile=none -O compression=lz4 \
    -O acltype=posixacl -O xattr=sa -O mountpoint=none -O canmount=off \
    -R /mnt rpool /dev/vda
zfs create -o canmount=off -o mountpoint=none rpool/ROOT
zfs create -o canmount=noauto -o mountpoint=/ rpool/ROOT/a
zfs mount rpool/ROOT/a
zfs create -o mountpoint=/home rpool/home
tar -xf /dev/vdb -C /mnt
test -x /mnt/usr/local/sbin/kld-job
zpool set bootfs=rpool/ROOT/a rpool
zpool export rpool
echo installed
