#!/bin/sh
# Kernel WireGuard works in the VM: two network namespaces joined by veth
# complete a real handshake and carry traffic through the tunnel.
set -eu
ip netns add a
ip netns add b
ip link add va netns a type veth peer name vb netns b
ip -n a addr add 192.0.2.1/24 dev va
ip -n b addr add 192.0.2.2/24 dev vb
ip -n a link set va up
ip -n b link set vb up
ip -n a link set lo up
ip -n b link set lo up
wg genkey > a.key
wg genkey > b.key
ip -n a link add wg0 type wireguard
ip -n b link add wg0 type wireguard
ip netns exec a wg set wg0 private-key ./a.key listen-port 51820 \
    peer "$(wg pubkey < b.key)" allowed-ips 10.9.0.2/32 endpoint 192.0.2.2:51820
ip netns exec b wg set wg0 private-key ./b.key listen-port 51820 \
    peer "$(wg pubkey < a.key)" allowed-ips 10.9.0.1/32 endpoint 192.0.2.1:51820
ip -n a addr add 10.9.0.1/24 dev wg0
ip -n b addr add 10.9.0.2/24 dev wg0
ip -n a link set wg0 up
ip -n b link set wg0 up
ip netns exec a ping -c 1 -W 5 10.9.0.2
handshake=$(ip netns exec a wg show wg0 latest-handshakes | cut -f2)
[ "$handshake" -gt 0 ]
ip netns exec b wg show wg0 transfer | awk '{ exit !($2 > 0) }'
ip netns del a
ip netns del b
