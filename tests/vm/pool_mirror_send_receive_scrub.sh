#!/bin/sh
# disks: 2
# The harness's own proof: a mirrored pool on the VM's blank disks, a
# snapshot sent and received, and a scrub, on real OpenZFS.
set -eu
set -- $KLD_VM_DISKS
[ "$#" -eq 2 ] && [ -b "$1" ] && [ -b "$2" ]
zpool create -O mountpoint=/harness harness mirror "$1" "$2"
[ "$(zpool list -H -o health harness)" = ONLINE ]
zpool status harness | grep -q 'mirror-0'
zfs create harness/src
dd if=/dev/urandom of=/harness/src/blob bs=64k count=32 2>/dev/null
sum=$(sha256sum < /harness/src/blob)
zfs snapshot harness/src@one
zfs send harness/src@one | zfs receive harness/copy
[ "$(sha256sum < /harness/copy/blob)" = "$sum" ]
[ "$(zfs list -H -o name -t snapshot harness/copy)" = harness/copy@one ]
zpool scrub -w harness
zpool status harness | grep -q 'scrub repaired 0B .* with 0 errors'
zpool export harness
zpool import -d /dev harness
[ "$(sha256sum < /harness/copy/blob)" = "$sum" ]
zpool destroy harness
