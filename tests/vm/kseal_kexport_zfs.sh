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

# ---------------------------------------------------------------------
# Under kills. A fresh golden pool on the disk for each kill point.
golden() {
    zpool create -f -O mountpoint=none -O canmount=off -R /inst kse "$disk"
    zfs create -o canmount=off -o mountpoint=none kse/ROOT
    zfs create -o canmount=noauto -o mountpoint=/ kse/ROOT/debian
    zfs mount kse/ROOT/debian
    zfs create -o canmount=off -o mountpoint=/var kse/var
    zfs create -o mountpoint=/var/log kse/var/log
    zfs create -o mountpoint=/var/lib kse/var/lib
    zfs create -o mountpoint=/home kse/home
    zfs create -o mountpoint=/root kse/root
    zpool set bootfs=kse/ROOT/debian kse
    populate /inst
    echo 'remember the milk' > /inst/home/alice/notes.txt
    echo 'listen = 8080' > /inst/etc/myapp.conf
    guid=$(zpool get -H -o value guid kse)
    zpool export kse
}

no_leftovers() {
    # no_leftovers WHAT: no temporary pool, sealing mount or deleted loop.
    if zpool list -H -o name | grep -q kldseal; then fail "$1: a temporary pool is imported"; fi
    if grep -q kld-seal /proc/mounts; then fail "$1: a sealing mount was left"; fi
    if losetup -a | grep -q deleted; then fail "$1: a loop device holds a deleted copy"; fi
}

check_disk_sealed() {
    zpool import -d "${disk}1" -R /chk -N "$guid" kse
    mount_all kse
    check_sealed /chk
    zpool export kse
}

# kseal DISK killed with its temporary pool imported (the step right after
# the import): the next run exports it, says so, and seals. (Every kill
# point of a tree seal is in the host tier; here each kill point costs
# ~40 s, so the VM proves the points that only ZFS has.)
golden
total=$(steps kseal "$disk")
[ "$total" -ge 8 ] || fail "kseal on a disk takes only $total steps"
imported=$(grep -n 'zpool import .*-t' /tmp/steps.trace | head -1 | cut -d: -f1)
[ -n "$imported" ] || fail "no import among kseal's steps: $(cat /tmp/steps.trace)"
mounted=$(grep -n 'zfs mount' /tmp/steps.trace | tail -1 | cut -d: -f1)
for n in "$imported" "$mounted"; do
    golden
    killed_after "$n" kseal "$disk"
    zpool list -H -o name | grep -q kldseal || fail "step $n left no temporary pool"
    if kseal --dry-run "$disk" > dry.out 2> dry.err; then fail "a dry run sealed past a left pool"; fi
    grep -q "pool kldseal" dry.err || fail "the dry run does not name the pool: $(cat dry.err)"
    kseal "$disk" > rerun.out 2> rerun.err || fail "kseal after a kill at step $n: $(cat rerun.err)"
    grep -q "exported pool kldseal" rerun.err || fail "the re-run does not say what it exported: $(cat rerun.err)"
    no_leftovers "kseal step $n"
    check_disk_sealed
done
echo "fault: kseal DISK ($total steps): killed after the import (step $imported) and the last mount (step $mounted), the next run exported the pool and sealed"

# A temporary pool that cannot be exported: the refusal names it and the way out.
golden
killed_after "$imported" kseal "$disk"
left=$(zpool list -H -o name | grep kldseal) || fail "no temporary pool left at step $imported: $(cat /tmp/killed.err)"
zfs mount "$left/ROOT/debian"
alt=$(zpool get -H -o value altroot "$left")
( cd "$alt" && sleep 600 ) &
holder=$!
sleep 1
if kseal "$disk" > busy.out 2> busy.err; then fail "kseal sealed past a busy temporary pool"; fi
grep -q "pool $left" busy.err || fail "the refusal does not name $left: $(cat busy.err)"
grep -q "zpool export" busy.err || fail "the refusal does not say how to recover: $(cat busy.err)"
kill "$holder"; wait "$holder" 2>/dev/null || true
kseal "$disk" > /dev/null 2> after.err || fail "kseal once the pool is free: $(cat after.err)"
no_leftovers "the busy pool"
check_disk_sealed
echo "fault: a busy temporary pool is refused by name: $(head -1 busy.err)"

# kexport killed with its sealing copy made (0600 in a 0700 directory) and
# with the copy's pool imported: the next run removes both and exports a
# sealed image; a final name is only ever complete.
golden
rm -rf /tmp/fx && mkdir -p /tmp/fx
total=$(steps kexport --name g0 "$disk" raw /tmp/fx)
copied=$(grep -n 'qemu-img convert' /tmp/steps.trace | head -1 | cut -d: -f1)
imported=$(grep -n 'zpool import .*-t' /tmp/steps.trace | head -1 | cut -d: -f1)
rm -rf /tmp/fx
for n in "$copied" "$imported" "$total"; do
    golden
    mkdir -p /tmp/fx
    killed_after "$n" kexport --name g "$disk" raw /tmp/fx
    for w in /tmp/fx/.kld-kexport-*; do
        [ -d "$w" ] || fail "step $n left no working directory"
        same "$(stat -c %a "$w")" 700
        [ ! -f "$w/g.sealing.raw" ] || same "$(stat -c %a "$w/g.sealing.raw")" 600
    done
    if [ -e /tmp/fx/g.raw ]; then
        same "$(cut -d' ' -f1 /tmp/fx/g.raw.sha256)" "$(sha256sum /tmp/fx/g.raw | cut -d' ' -f1)"
        kexport --name again "$disk" raw /tmp/fx > rerun.out 2> rerun.err || fail "step $n: $(cat rerun.err)"
    else
        kexport --name g "$disk" raw /tmp/fx > rerun.out 2> rerun.err || fail "step $n: $(cat rerun.err)"
    fi
    grep -q "removed /tmp/fx/.kld-kexport-" rerun.err || fail "step $n: the next run did not say what it removed: $(cat rerun.err)"
    if ls -a /tmp/fx | grep -q '^\.kld-kexport-'; then fail "step $n: a working directory survived the next run"; fi
    no_leftovers "kexport step $n"
    lo=$(losetup -f --show -P /tmp/fx/g.raw)
    zpool import -d "${lo}p1" -R /out -N "$guid" exported
    mount_all exported
    check_sealed /out
    zpool export exported
    losetup -d "$lo"
    rm -rf /tmp/fx
done
echo "fault: kexport ($total steps): killed after the copy (step $copied), the import (step $imported) and the last step; each cleaned and exported sealed by the next run"

# SIGTERM and SIGINT: the sealing copy goes with the run.
for sig in TERM; do
    golden
    mkdir -p /tmp/fx
    kexport --name "s$sig" "$disk" raw /tmp/fx > /dev/null 2> sig.err &
    pid=$!
    i=0
    until ls /tmp/fx/.kld-kexport-*/"s$sig.sealing.raw" > /dev/null 2>&1 || [ $i -ge 200 ]; do
        sleep 0.05; i=$((i + 1))
    done
    kill -"$sig" "$pid"
    set +e; wait "$pid"; got=$?; set -e
    [ "$got" -ne 0 ] || { echo "kexport ended before SIG$sig"; }
    if ls -a /tmp/fx | grep -q '^\.kld-kexport-'; then fail "SIG$sig left the working directory: $(cat sig.err)"; fi
    no_leftovers "SIG$sig"
    rm -rf /tmp/fx
done
echo "fault: kexport removes its sealing copy on SIGTERM"
