# Two network namespaces, a and b, joined by veth (192.0.2.1 and .2), each
# with a kernel WireGuard interface wg0 (10.9.0.1 and .2) that has the other
# as its peer. Sourced: . /kld/run/lib/wg_pair.sh
#
# wg_pair_up DIR [ARGS...]: keys are written to DIR/a.key and DIR/b.key;
# ARGS are added to a's `wg set` (e.g. another peer). The interfaces are
# up; no packet has been sent yet.
wg_pair_up() {
    dir=$1
    shift
    ip netns add a
    ip netns add b
    ip link add va netns a type veth peer name vb netns b
    ip -n a addr add 192.0.2.1/24 dev va
    ip -n b addr add 192.0.2.2/24 dev vb
    for ns in a b; do
        ip -n $ns link set lo up
        ip -n $ns link set v$ns up
        wg genkey >"$dir/$ns.key"
        ip -n $ns link add wg0 type wireguard
    done
    ip netns exec a wg set wg0 private-key "$dir/a.key" listen-port 51820 \
        peer "$(wg pubkey <"$dir/b.key")" allowed-ips 10.9.0.2/32 endpoint 192.0.2.2:51820 "$@"
    ip netns exec b wg set wg0 private-key "$dir/b.key" listen-port 51820 \
        peer "$(wg pubkey <"$dir/a.key")" allowed-ips 10.9.0.1/32 endpoint 192.0.2.1:51820
    ip -n a addr add 10.9.0.1/24 dev wg0
    ip -n b addr add 10.9.0.2/24 dev wg0
    ip -n a link set wg0 up
    ip -n b link set wg0 up
}

# wg_pair_down: removes both namespaces (and with them every interface).
wg_pair_down() {
    ip netns del a
    ip netns del b
}
