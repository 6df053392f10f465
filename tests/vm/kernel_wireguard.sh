#!/bin/sh
# Kernel WireGuard works in the VM: two network namespaces joined by veth
# complete a real handshake and carry traffic through the tunnel.
set -eu
. /kld/run/lib/wg_pair.sh
wg_pair_up "$PWD"
ip netns exec a ping -c 1 -W 5 10.9.0.2
handshake=$(ip netns exec a wg show wg0 latest-handshakes | cut -f2)
[ "$handshake" -gt 0 ]
ip netns exec b wg show wg0 transfer | awk '{ exit !($2 > 0) }'
wg_pair_down
