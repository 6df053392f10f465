#!/bin/sh
# kwg with kernel WireGuard: a hub and a spoke in two network namespaces;
# kwg up makes kernel devices, the spoke joins through an enrolment window,
# a real handshake carries pings, a peer is added and removed live (and in
# the file), and a revoked spoke no longer reaches the hub.
set -eu
. /kld/run/lib/assert.sh
ip netns add hub
ip netns add spoke
ip link add e0 netns hub type veth peer name e0 netns spoke
ip -n hub addr add 192.0.2.1/24 dev e0
ip -n spoke addr add 192.0.2.2/24 dev e0
for ns in hub spoke; do ip -n $ns link set e0 up; ip -n $ns link set lo up; done
H="ip netns exec hub kwg --config-dir $PWD/hub/etc --state-dir $PWD/hub/state"
S="ip netns exec spoke kwg --config-dir $PWD/spoke/etc --state-dir $PWD/spoke/state"
mkdir -p hub/etc spoke/etc
$H hub init wg0 --network fd00:250::/64 --endpoint 192.0.2.1
$H up wg0 | grep -q "kernel WireGuard"
ip -n hub -d link show wg0 | grep -q wireguard
$H hub serve wg0 >serve.log 2>&1 &
serve=$!
trap 'kill $serve 2>/dev/null || true' EXIT
# The token is a secret: into a file only root reads, never into argv.
(umask 077; $H enrol open wg0 --joins 1 --for 10m >token)
refuses 2 "command line" $S join --iface wg8 "$(cat token)"
i=0
until $S join --iface wg0 --name spoke --token-file token >join.out 2>join.err; do
    i=$((i + 1)); [ $i -lt 50 ] || fail "join: $(cat join.err)"; sleep 0.2
done
grep -q "as fd00:250::2/64" join.out || fail "$(cat join.out)"
ip -n spoke -d link show wg0 | grep -q wireguard
ip netns exec spoke ping -c 1 -W 5 fd00:250::1
handshake=$(ip netns exec hub wg show wg0 latest-handshakes | cut -f2)
[ "$handshake" -gt 0 ] || fail "no handshake"
$H show wg0 -H | grep -q "	up$" || fail "$($H show wg0)"
# A used-up window is refused and changes nothing.
before=$(cat hub/etc/wg0.conf)
refuses 1 "no joins left" ip netns exec spoke kwg --config-dir $PWD/other join --iface wg9 <token
same "$(cat hub/etc/wg0.conf)" "$before"
# A peer added live and in the file, then removed.
extra=$(kwg genkey | kwg pubkey)
$H peer add wg0 "$extra" --allowed-ips fd00:250::99/128
ip netns exec hub wg show wg0 peers | grep -q "$extra"
grep -q "$extra" hub/etc/wg0.conf
# apply: the file is what is live already; the spoke's session is kept.
$H apply wg0 | grep -q "no changes"
$H peer remove wg0 "$extra"
if ip netns exec hub wg show wg0 peers | grep -q "$extra"; then fail "peer still live"; fi
ip netns exec spoke ping -c 1 -W 5 fd00:250::1
# Revoke: the spoke no longer reaches the hub.
$H revoke --iface wg0 fd00:250::2
if ip netns exec spoke ping -c 1 -W 2 fd00:250::1; then fail "revoked spoke still reaches the hub"; fi
$S down wg0
$H down wg0
kill $serve
ip netns del hub
ip netns del spoke
