#!/bin/sh
# Called by busybox `uevent` (and once per device at boot) with the event in
# the environment. Writes the record libudev reads for a block device, so
# that libzfs, which waits for udev to know a new partition, goes on.
[ "$SUBSYSTEM" = block ] || exit 0
[ -n "$MAJOR" ] && [ -n "$MINOR" ] && [ -n "$DEVNAME" ] || exit 0
name=${DEVNAME#/dev/}
db=/run/udev/data/b$MAJOR:$MINOR
case "$ACTION" in
add | change)
    ln -sf "../../$name" "/dev/disk/by-kld/$name"
    printf 'S:disk/by-kld/%s\nI:1\n' "$name" > "$db.tmp" && mv "$db.tmp" "$db"
    ;;
remove)
    rm -f "$db" "/dev/disk/by-kld/$name"
    ;;
esac
