#!/bin/sh
# disks: 1
# kseal and kexport on real OpenZFS. A disk holds a pool with a root boot
# environment and separate /var/log, /var/lib, /home and /root datasets (the
# seeds' installer layout) and a second boot environment. It is sealed with
# its pool imported under a temporary name and altroot, while another pool
# of the same name is imported here and must be left alone; every dataset of
# the installed system is sealed, the other BE is not mounted. Then kexport
# seals a copy (the source disk is never changed) and exports it, and the
# exported image's pool imports cleanly and carries the seal.
set -eu
. /kld/run/lib/assert.sh
modprobe loop
disk=$KLD_VM_DISKS
ID=4f1c2b7e9a8d4c3b8e7f6a5b4c3d2e1f

zpool create -O mountpoint=none -O canmount=off -R /inst kse "$disk"
zfs create -o canmount=off -o mountpoint=none kse/ROOT
zfs create -o canmount=noauto -o mountpoint=/ kse/ROOT/debian
zfs create -o canmount=noauto -o mountpoint=/ kse/ROOT/previous
zfs mount kse/ROOT/debian
zfs create -o canmount=off -o mountpoint=/var kse/var
zfs create -o mountpoint=/var/log kse/var/log
zfs create -o mountpoint=/var/lib kse/var/lib
zfs create -o mountpoint=/home kse/home
zfs create -o mountpoint=/root kse/root
zpool set bootfs=kse/ROOT/debian kse
guid=$(zpool get -H -o value guid kse)

populate() {
    # populate ROOT: identity, secrets and state a seal must remove.
    R=$1
    mkdir -p $R/root $R/etc/ssh $R/etc/kldload $R/etc/wireguard $R/var/lib/dhcp \
        $R/var/lib/dbus $R/var/log/journal/$ID $R/home/alice
    echo $ID > $R/etc/machine-id
    echo $ID > $R/var/lib/dbus/machine-id
    printf -- '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n' \
        > $R/etc/ssh/ssh_host_ed25519_key
    wg genkey > $R/etc/wireguard/wg0.key
    echo 'KLDLOAD_ROOT_PASSWORD=hunter2' > $R/etc/kldload/install-manifest.env
    echo 'lease { fixed-address 10.0.0.9; }' > $R/var/lib/dhcp/dhclient.eth0.leases
    echo LPKSHHRH > $R/var/log/journal/$ID/system.journal
    echo 'a log line' > $R/var/log/syslog
    echo 'zpool status' > $R/root/.bash_history
    echo 'ls' > $R/home/alice/.bash_history
}
populate /inst
echo 'remember the milk' > /inst/home/alice/notes.txt
echo 'listen = 8080' > /inst/etc/myapp.conf
if kseal audit /inst > audit.out; then fail "a lived-in system audits clean"; fi
grep -q '/var/log/journal' audit.out || fail "audit misses the journal: $(cat audit.out)"
grep -q '/home/alice/.bash_history' audit.out || fail "audit misses a history"
zpool export kse

# Another pool called kse, imported here: sealing must not touch it.
truncate -s 128M /tmp/decoy.img
zpool create -R /decoy kse /tmp/decoy.img
touch /decoy/kse-decoy

# A dry run imports read-only and changes nothing.
kseal --dry-run "$disk" > dry.out
grep -q "^histories	remove	/home/alice/.bash_history" dry.out || fail "dry run: $(cat dry.out)"
kseal "$disk" > seal.out
grep -q "^pool kse (boot environment kse/ROOT/debian)" seal.out || fail "$(cat seal.out)"
for ds in "kse/var/log at /var/log" "kse/var/lib at /var/lib" "kse/home at /home" "kse/root at /root"; do
    grep -q "  $ds\$" seal.out || fail "$ds not sealed: $(cat seal.out)"
done
if grep -q previous seal.out; then fail "another boot environment was mounted"; fi
same "$(zpool list -H -o name)" kse
same "$(zpool get -H -o value altroot kse)" /decoy
[ -e /decoy/kse-decoy ] || fail "the decoy pool was touched"
if grep -q kldseal /proc/mounts; then fail "a sealing mount was left"; fi
zpool destroy kse
rm /tmp/decoy.img

check_sealed() {
    # check_sealed ROOT: what the seal must leave, on every dataset.
    same "$(cat "$1/etc/machine-id")" uninitialized
    [ -L "$1/var/lib/dbus/machine-id" ] || fail "dbus machine-id is not a link"
    for f in etc/ssh/ssh_host_ed25519_key etc/wireguard/wg0.key etc/kldload/install-manifest.env \
        var/lib/dhcp/dhclient.eth0.leases var/log/journal/$ID/system.journal \
        root/.bash_history home/alice/.bash_history; do
        if [ -e "$1/$f" ]; then fail "$f survived the seal"; fi
    done
    same "$(cat "$1/home/alice/notes.txt")" 'remember the milk'
    same "$(cat "$1/etc/myapp.conf")" 'listen = 8080'
    if [ -s "$1/var/log/syslog" ]; then fail "syslog not emptied"; fi
    kseal audit "$1" || fail "sealed system does not audit clean"
}

mount_all() {
    # mount_all POOL: the boot environment, then the other datasets.
    zfs mount "$1/ROOT/debian"
    zfs mount -a
}

zpool import -d "${disk}1" -R /chk -N "$guid" kse
mount_all kse
check_sealed /chk
# Plant secrets again; kexport must seal its copy, not the source.
populate /chk
zpool export kse

mkdir -p /tmp/exp
kexport --name golden "$disk" raw /tmp/exp > export.out
[ -f /tmp/exp/golden.raw ] && [ -f /tmp/exp/golden.raw.sha256 ] || fail "$(cat export.out)"
same "$(ls -a /tmp/exp | grep -c partial)" 0
same "$(ls -a /tmp/exp | grep -c sealing)" 0
same "$(cut -d' ' -f1 /tmp/exp/golden.raw.sha256)" "$(sha256sum /tmp/exp/golden.raw | cut -d' ' -f1)"
kexport --no-seal --name golden "$disk" qcow2 /tmp/exp > export2.out
qemu-img check -f qcow2 /tmp/exp/golden.qcow2 > /dev/null

# The source still carries what was planted: it was never sealed in place.
zpool import -d "${disk}1" -R /src -N "$guid" kse
mount_all kse
[ -e /src/root/.bash_history ] || fail "kexport changed the source disk"
zpool export kse

# The exported image's pool imports cleanly, and is sealed.
lo=$(losetup -f --show -P /tmp/exp/golden.raw)
zpool import -d "${lo}p1" -R /out -N "$guid" exported
same "$(zpool list -H -o health exported)" ONLINE
zpool status -x exported | grep -q 'is healthy' || fail "$(zpool status exported)"
mount_all exported
check_sealed /out
zpool export exported
losetup -d "$lo"
