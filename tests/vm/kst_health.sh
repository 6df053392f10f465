#!/bin/sh
# disks: 2
# kst on real OpenZFS: a healthy mirror after a scrub; stale snapshots; the
# mirror with one side offline; checksum errors injected with zinject and
# found by a scrub (one side: repaired; both sides: data errors); a pool
# filled past the capacity threshold. Each case checks the exit status and
# the status in the human, JSON and Prometheus outputs, and prints them
# between "=== kst CASE FORMAT" and "=== end" lines for tests/tests/vm.rs,
# which validates every JSON document against the shipped schema and every
# Prometheus text with promtool.
set -eu
. /kld/run/lib/assert.sh
. /kld/run/lib/wg_pair.sh
set -- $KLD_VM_DISKS
A=$1 B=$2
# zpool status names vdevs without /dev/.
A_VDEV=${A##*/} B_VDEV=${B##*/}

# kst_case NAME WANT_EXIT ARGS...: runs kst (or $KST, e.g. in a network
# namespace) in the three formats, checks that each exits WANT_EXIT, and
# prints the outputs for the host.
kst_case() {
    name=$1 want=$2
    shift 2
    for format in human json prometheus; do
        case $format in
        human) flag= ;;
        *) flag=--$format ;;
        esac
        set +e
        ${KST:-kst} $flag "$@" >/tmp/kst.out 2>/tmp/kst.err
        got=$?
        set -e
        echo "=== kst $name $format exit=$got"
        cat /tmp/kst.out
        echo "=== end"
        [ "$got" -eq "$want" ] || fail "kst $flag $* ($name) exited $got, expected $want: $(cat /tmp/kst.err)"
        [ ! -s /tmp/kst.err ] || fail "kst $flag $* ($name) wrote to stderr: $(cat /tmp/kst.err)"
    done
    ${KST:-kst} -q "$@" >/tmp/kst.out 2>&1 && got=0 || got=$?
    [ "$got" -eq "$want" ] || fail "kst -q $* ($name) exited $got, expected $want"
    [ ! -s /tmp/kst.out ] || fail "kst -q printed: $(cat /tmp/kst.out)"
}

cat >/tmp/kst.toml <<'EOF'
[[snapshots]]
dataset = "health/data"
recursive = true
warning_age = "1h"
EOF

zpool create -O mountpoint=/health health mirror "$A" "$B"
zfs create health/data
zfs create health/data/db
dd if=/dev/urandom of=/health/data/blob bs=64k count=64 2>/dev/null
zfs snapshot -r health/data@now
zpool scrub -w health

# 1. Healthy: everything that runs is OK; what has no data source here (no
#    systemd, no smartctl, / not on ZFS, no replication configured) is
#    skipped with its reason.
kst_case healthy 0 --config /tmp/kst.toml
kst --config /tmp/kst.toml >/tmp/h.out
same "$(head -n 1 /tmp/h.out)" "pool: ONLINE  scrub: clean  snapshots: 2/2 recent"
grep -q '^skipped disks: smartctl is not installed' /tmp/h.out || fail "$(cat /tmp/h.out)"
grep -q '^skipped services: ' /tmp/h.out || fail "$(cat /tmp/h.out)"
kst --config /tmp/kst.toml --json | grep -q '"status": *"OK"'
kst --config /tmp/kst.toml --prometheus | grep -qx 'kld_check_status{check="pools"} 0'
# Asked for by name, a check without its data source is UNKNOWN.
kst_case asked-for-disks 3 --check disks

# 2. Stale snapshots: WARNING, then CRITICAL past critical_age.
cat >/tmp/stale.toml <<'EOF'
[[snapshots]]
dataset = "health/data"
recursive = true
warning_age = "1s"
[[snapshots]]
dataset = "health"
warning_age = "1s"
critical_age = "2s"
EOF
sleep 3
kst_case stale 2 --config /tmp/stale.toml --check snapshots
kst --config /tmp/stale.toml --check snapshots >/tmp/s.out || true
grep -q '^  health: has no snapshot' /tmp/s.out || fail "$(cat /tmp/s.out)"
grep -q '^  health/data/db: newest snapshot @now is [0-9]*s old' /tmp/s.out || fail "$(cat /tmp/s.out)"
head -n 4 /tmp/stale.toml >/tmp/stale-warning.toml
kst_case stale-warning 1 --config /tmp/stale-warning.toml --check snapshots

# 3. Degraded: one side of the mirror offline is WARNING.
zpool offline health "$B"
kst_case degraded 1 --check pools
kst --check pools >/tmp/d.out || true
same "$(head -n 1 /tmp/d.out)" "pool: health DEGRADED"
grep -q "^  health: $B_VDEV is OFFLINE" /tmp/d.out || fail "$(cat /tmp/d.out)"
kst --check pools --prometheus | grep -qx 'kld_pool_online{pool="health"} 0'
zpool online health "$B"
zpool wait -t resilver health
zpool clear health

# 4. Checksum errors on one side, found and repaired by a scrub: WARNING
#    (vdev counters; the scrub repaired data).
zinject -d "$A" -e corrupt -T read -f 100 health
zpool scrub -w health
zinject -c all
kst_case repaired 1 --check pools --check scrub
kst --check pools --check scrub >/tmp/r.out || true
grep -q "^  health: $A_VDEV has 0 read, 0 write and [1-9][0-9]* checksum errors" /tmp/r.out ||
    fail "$(cat /tmp/r.out)"
grep -q "^  health: the last scrub repaired " /tmp/r.out || fail "$(cat /tmp/r.out)"
zpool clear health

# 5. Both sides corrupt: the scrub cannot repair, the pool has data errors:
#    CRITICAL.
zinject -d "$A" -e corrupt -T read -f 100 health
zinject -d "$B" -e corrupt -T read -f 100 health
zpool scrub -w health
zinject -c all
kst_case data-errors 2 --check pools --check scrub
kst --check pools >/tmp/e.out || true
grep -q '^CRITICAL pools: .*data errors' /tmp/e.out || fail "$(cat /tmp/e.out)"
zpool destroy health

# 6. A pool filled past the capacity threshold.
# (512M: ZFS keeps at least 128M of any pool in reserve.)
truncate -s 512M /tmp/full.img
zpool create -O compression=off -O mountpoint=/full full /tmp/full.img
dd if=/dev/urandom of=/full/blob bs=1M count=120 2>/dev/null || fail "cannot fill pool full"
zpool sync full
cap=$(zpool list -H -p -o cap full)
[ "$cap" -ge 15 ] || fail "pool full is only $cap% full"
cat >/tmp/full.toml <<EOF
[pools]
capacity_warning = $((cap - 10))
capacity_critical = $((cap + 5))
EOF
kst_case full 1 --config /tmp/full.toml --check pools
kst --config /tmp/full.toml --check pools >/tmp/f.out || true
grep -q "^  full is ${cap}% full" /tmp/f.out || fail "$(cat /tmp/f.out)"
cat >/tmp/full.toml <<EOF
[pools]
capacity_warning = $((cap - 10))
capacity_critical = $((cap - 5))
EOF
kst_case full-critical 2 --config /tmp/full.toml --check pools
zpool destroy full
rm /tmp/full.img

# 7. WireGuard (the kernel module): in namespace a, wg0 has one peer that
#    completes a real handshake and one that never connected: WARNING; in
#    b, its one peer is up: OK.
ghost=$(wg genkey | wg pubkey)
wg_pair_up /tmp peer "$ghost" allowed-ips 10.9.0.3/32 endpoint 192.0.2.3:51820
ip netns exec a ping -c 1 -W 5 10.9.0.2 >/dev/null
KST="ip netns exec a kst"
kst_case wg-one-down 1 --check wireguard
ip netns exec a kst --check wireguard >/tmp/w.out || true
same "$(head -n 1 /tmp/w.out)" "WG: 1/2 peers up"
grep -q "^  wg0: peer $ghost has never completed a handshake" /tmp/w.out || fail "$(cat /tmp/w.out)"
ip netns exec a kst --check wireguard --prometheus | grep -qx 'kld_wireguard_peers_up{interface="wg0"} 1'
KST="ip netns exec b kst"
kst_case wg-up 0 --check wireguard
KST=kst
# Without interfaces (the root namespace), the check has no data source.
kst_case wg-none 3 --check wireguard
wg_pair_down

# Bad configuration and usage: UNKNOWN (3), never 2, which reads CRITICAL.
echo 'nonsense = 1' >/tmp/bad.toml
refuses 3 'unknown field' kst --config /tmp/bad.toml
refuses 3 "invalid value 'nope'" kst --check nope
refuses 3 'cannot read' kst --config /tmp/missing.toml
echo "kst health scenario passed"
