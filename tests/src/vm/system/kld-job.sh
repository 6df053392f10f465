#!/bin/sh
# The boot tier's job runner, installed in the ZFS-on-root test system as
# /usr/local/sbin/kld-job and started by kld-job.service on every boot: it
# runs the script on the job disk (/dev/vdb) with the kld binaries on PATH,
# reports on the second serial port between the run's markers, and powers
# the machine off.
out=/dev/ttyS1
mkdir -p /run/kld-job
if mount -o ro /dev/vdb /run/kld-job; then
    . /run/kld-job/env
    work=$(mktemp -d)
    cd "$work" || exit 1
    echo "KLD-VM-START-$KLD_NONCE" > "$out"
    PATH=/run/kld-job/bin:$PATH sh -e /run/kld-job/script.sh > "$out" 2>&1 < /dev/null
    echo "KLD-VM-EXIT-$KLD_NONCE $?" > "$out"
fi
systemctl --no-block poweroff
