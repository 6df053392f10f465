#!/bin/sh
# Init of the kld test VM (busybox sh as PID 1). Prepares the machine, runs
# /kld/run/script.sh with its output on the second serial port, reports the
# script's exit status there, and powers off. The kernel console (first
# serial port) is kept apart, in the harness's console log.
export PATH=/kld/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root TERM=dumb WG_COLOR_MODE=never
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm /run/udev/data /dev/disk/by-kld
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
. /kld/run/env

# fd 3 is the channel to the harness; closing it waits until it is sent.
exec 3>/dev/ttyS1
stty -F /dev/ttyS1 raw -echo
fail() {
    echo "KLD-VM-SETUP-FAILED-$KLD_NONCE $*" >&3
    exec 3>&-
    poweroff -f
}

# No udev here: record block devices where libudev looks for them.
uevent /sbin/kld-udev-record >/dev/null 2>&1 &
modprobe -a virtio_pci virtio_blk || fail "cannot load the virtio modules"
modprobe zfs || fail "cannot load the zfs module"
for dev in /sys/class/block/*; do
    [ -e "$dev/dev" ] || continue
    IFS=: read -r major minor < "$dev/dev"
    ACTION=add SUBSYSTEM=block DEVNAME=${dev##*/} MAJOR=$major MINOR=$minor /sbin/kld-udev-record
done
for disk in $KLD_VM_DISKS; do
    tries=0
    while [ ! -b "$disk" ]; do
        tries=$((tries + 1))
        [ "$tries" -gt 100 ] && fail "disk $disk did not appear"
        sleep 0.1
    done
done
hostname kld-vm
ip link set lo up
echo 1 > /proc/sys/kernel/sysrq

echo "KLD-VM-START-$KLD_NONCE" >&3
cd /root
/bin/sh /kld/run/script.sh </dev/null >&3 2>&3
rc=$?
sync
echo "KLD-VM-EXIT-$KLD_NONCE $rc" >&3
exec 3>&-
poweroff -f
