#!/bin/sh
# nf_tables works in the VM, with on-demand module loading: a rule in a
# table of its own drops real packets, and deleting the table lets them by.
set -eu
ip netns add fw
ip netns add peer
ip link add v0 netns fw type veth peer name v1 netns peer
ip -n fw addr add 198.51.100.1/24 dev v0
ip -n peer addr add 198.51.100.2/24 dev v1
ip -n fw link set v0 up
ip -n peer link set v1 up
ip netns exec peer ping -c 1 -W 3 198.51.100.1
ip netns exec fw nft -f - <<'NFT'
table inet t {
    chain input {
        type filter hook input priority filter; policy accept;
        ct state established,related accept
        ip saddr 198.51.100.2 icmp type echo-request counter drop
    }
}
NFT
if ip netns exec peer ping -c 1 -W 2 198.51.100.1; then
    echo "the drop rule let a ping through" >&2
    exit 1
fi
ip netns exec fw nft list table inet t | grep -q 'counter packets 1 '
ip netns exec fw nft delete table inet t
ip netns exec peer ping -c 1 -W 3 198.51.100.1
ip netns del fw
ip netns del peer
