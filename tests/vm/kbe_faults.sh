#!/bin/sh
# disks: 1
# kbe under kills and concurrency: create, activate (with hooks) and
# destroy killed after every one of their steps, prune killed part-way;
# after each kill no incomplete boot environment is listed as normal or
# can be activated, bootfs names a complete one, the next kbe command
# finishes or removes the interrupted work and says so, and nothing that
# was not named is touched. Then the lock: two creates of one name at
# once, and a create racing a destroy. And issue 17 #19: the rollback
# target can be destroyed when named (the record is cleared), prune still
# keeps it.
set -eu
. /kld/run/lib/assert.sh
zpool create -R /kf -O mountpoint=none -O canmount=off kf $KLD_VM_DISKS
zfs create -o canmount=off -o mountpoint=none kf/ROOT
zfs create -o canmount=noauto -o mountpoint=/ kf/ROOT/a
zfs create -o canmount=noauto kf/ROOT/a/var
zfs create -o canmount=noauto -o compression=zstd kf/ROOT/a/var/lib
zfs create -o canmount=noauto -o mountpoint=/ kf/ROOT/spare
zfs create -o mountpoint=/home kf/home
zpool set bootfs=kf/ROOT/a kf
zfs snapshot kf/ROOT/a@user
mkdir -p /mnt/kf

# everything: every dataset and snapshot of the pool, to compare.
everything() {
    zfs list -H -o name -t all -r kf | sort
}

# sane: what must hold after any kill. A boot environment listed without
# the I flag is complete (its three datasets, mountpoint /); one listed with
# it cannot be activated (a dry run, which does not clean up, says so);
# bootfs names a complete boot environment.
sane() {
    kbe --pool kf list -H > /tmp/kf.list
    while IFS='	' read -r name flags _; do
        case "$flags" in
        *I*)
            refuses 1 'incomplete' kbe --pool kf activate --dry-run "$name"
            ;;
        *)
            same "$(zfs get -H -o value mountpoint "kf/ROOT/$name")" /kf
            if [ "$name" != spare ]; then
                same "$(zfs list -H -o name -r "kf/ROOT/$name" | wc -l)" 3
            fi
            ;;
        esac
    done < /tmp/kf.list
    bootfs=$(zpool get -H -o value bootfs kf)
    same "$(zfs get -H -o value mountpoint "$bootfs")" /kf
    grep -q "^${bootfs#kf/ROOT/}	[^I]*	" /tmp/kf.list || fail "bootfs $bootfs is not listed as complete: $(cat /tmp/kf.list)"
}

# journal: the interrupted operation recorded on the root, or '-'.
journal() {
    zfs get -H -o value kld:journal kf/ROOT
}

# repeat TRACE I: step I of TRACE is step I-1 reported again (kld-exec's
# Cmd::run reports one finished program twice, in run_any_status and in
# check, with nothing between): the same kill point, tried once.
repeat() {
    [ "$2" -gt 1 ] || return 1
    [ "$(sed -n "$(($2 - 1))p" "$1" | cut -f2-)" = "$(sed -n "$2p" "$1" | cut -f2-)" ]
}

before=$(everything)

# ---- create, killed after every step --------------------------------------
n=$(steps kbe --pool kf create b a)
echo "kbe create: $n steps"
cat /tmp/steps.trace
cp /tmp/steps.trace /tmp/kf.create.trace
[ "$n" -ge 7 ] || fail "kbe create took only $n steps"
same "$(journal)" -
kbe --pool kf destroy b
same "$(everything)" "$before"
i=1
while [ "$i" -le "$n" ]; do
    if repeat /tmp/kf.create.trace "$i"; then i=$((i + 1)); continue; fi
    killed_after "$i" kbe --pool kf create b a
    sane
    interrupted=$(journal)
    if [ $((i % 2)) -eq 1 ]; then
        # The same command again: it cleans up, then creates (or finds b
        # finished by the clean-up).
        kbe --pool kf create b a 2> /tmp/kf.err || grep -q 'already exists' /tmp/kf.err
    else
        # Another command: it cleans up and says so.
        kbe --pool kf rename spare spare2 2> /tmp/kf.err
        kbe --pool kf rename spare2 spare
        if zfs list kf/ROOT/b > /dev/null 2>&1; then
            :
        else
            kbe --pool kf create b a
        fi
    fi
    if [ "$interrupted" != - ]; then
        grep -q 'interrupted kbe create of b' /tmp/kf.err \
            || fail "after a kill at step $i the next run did not say what it did: $(cat /tmp/kf.err)"
    fi
    same "$(journal)" -
    sane
    same "$(zfs list -H -o name -r kf/ROOT/b | wc -l)" 3
    same "$(zfs get -H -o value compression kf/ROOT/b/var/lib)" zstd
    same "$(zfs get -H -o value canmount kf/ROOT/b)" noauto
    kbe --pool kf destroy b
    same "$(everything)" "$before"
    i=$((i + 1))
done

echo "kbe create: kill points tried: $(grep -c . /tmp/kf.create.trace) steps, $(cut -f2- /tmp/kf.create.trace | uniq | wc -l) distinct"

# ---- activate with a hook, killed after every step ------------------------
mkdir -p /tmp/kf-hooks
printf '#!/bin/sh\necho "$1 $2 $3" >> /tmp/kf-hook.log\n' > /tmp/kf-hooks/10-log
chmod +x /tmp/kf-hooks/10-log
kbe --pool kf create b a
kbe --pool kf create c a
# bootfs a, rollback record c.
reset_activation() {
    zpool set bootfs=kf/ROOT/a kf
    zfs set kld:previous-be=c kf/ROOT
    rm -f /tmp/kf-hook.log
}
reset_activation
n=$(steps kbe --pool kf --hooks-dir /tmp/kf-hooks activate b)
echo "kbe activate: $n steps"
cat /tmp/steps.trace
cp /tmp/steps.trace /tmp/kf.activate.trace
[ "$n" -ge 4 ] || fail "kbe activate took only $n steps"
i=1
while [ "$i" -le "$n" ]; do
    if repeat /tmp/kf.activate.trace "$i"; then i=$((i + 1)); continue; fi
    reset_activation
    killed_after "$i" kbe --pool kf --hooks-dir /tmp/kf-hooks activate b
    sane
    interrupted=$(journal)
    kbe --pool kf --hooks-dir /tmp/kf-hooks rename spare spare2 2> /tmp/kf.err
    kbe --pool kf rename spare2 spare
    if [ "$interrupted" != - ]; then
        grep -q 'interrupted kbe activate of b' /tmp/kf.err \
            || fail "after a kill at step $i the next run did not say what it did: $(cat /tmp/kf.err)"
    fi
    same "$(journal)" -
    sane
    # Either the activation happened whole, or not at all.
    case "$(zpool get -H -o value bootfs kf)" in
    kf/ROOT/b)
        same "$(zfs get -H -o value kld:previous-be kf/ROOT)" a
        same "$(tail -n 1 /tmp/kf-hook.log)" "activate kf/ROOT/b kf/ROOT/a"
        ;;
    kf/ROOT/a)
        same "$(zfs get -H -o value kld:previous-be kf/ROOT)" c
        if [ -s /tmp/kf-hook.log ]; then
            same "$(tail -n 1 /tmp/kf-hook.log)" "activate kf/ROOT/a kf/ROOT/b"
        fi
        ;;
    *) fail "bootfs is $(zpool get -H -o value bootfs kf)" ;;
    esac
    i=$((i + 1))
done
reset_activation
kbe --pool kf destroy b
kbe --pool kf destroy c
zfs inherit kld:previous-be kf/ROOT
same "$(everything)" "$before"

# ---- destroy of a boot environment another depends on, killed after every step
setup_destroy() {
    kbe --pool kf create d a
    kbe --pool kf mount d /mnt/kf
    echo d > /mnt/kf/only-d
    kbe --pool kf unmount d
    kbe --pool kf create e d
}
setup_destroy
n=$(steps kbe --pool kf destroy d)
echo "kbe destroy: $n steps"
cat /tmp/steps.trace
cp /tmp/steps.trace /tmp/kf.destroy.trace
grep -q 'promote' /tmp/steps.trace || fail "no promotion in the destroy"
kbe --pool kf destroy e
same "$(everything)" "$before"
i=1
while [ "$i" -le "$n" ]; do
    if repeat /tmp/kf.destroy.trace "$i"; then i=$((i + 1)); continue; fi
    setup_destroy
    killed_after "$i" kbe --pool kf destroy d
    sane
    interrupted=$(journal)
    kbe --pool kf rename spare spare2 2> /tmp/kf.err
    kbe --pool kf rename spare2 spare
    if [ "$interrupted" != - ]; then
        grep -q 'interrupted kbe destroy of d' /tmp/kf.err \
            || fail "after a kill at step $i the next run did not say what it did: $(cat /tmp/kf.err)"
    fi
    same "$(journal)" -
    if zfs list kf/ROOT/d > /dev/null 2>&1; then
        kbe --pool kf destroy d
    fi
    # e, which was not named, is whole and keeps d's files.
    same "$(zfs list -H -o name -r kf/ROOT/e | wc -l)" 3
    kbe --pool kf mount e /mnt/kf
    same "$(cat /mnt/kf/only-d)" d
    kbe --pool kf unmount e
    kbe --pool kf destroy e
    same "$(everything)" "$before"
    i=$((i + 1))
done

# ---- prune, killed part-way ------------------------------------------------
for i in 3 6 9; do
    kbe --pool kf create p1 a
    kbe --pool kf create p2 a
    kbe --pool kf create p3 a
    set +e
    KLD_FAULT_KILL_AFTER=$i kbe --pool kf prune --keep 2 > /dev/null 2>&1
    set -e
    sane
    kbe --pool kf prune --keep 2 2> /tmp/kf.err
    same "$(journal)" -
    # Kept: a (next boot), the two newest (p3, p2); spare and p1 pruned.
    same "$(kbe --pool kf list -H | cut -f1 | tr '\n' ' ')" "a p2 p3 "
    kbe --pool kf destroy p2
    kbe --pool kf destroy p3
    zfs create -o canmount=noauto -o mountpoint=/ kf/ROOT/spare
done
same "$(everything)" "$before"

# ---- the lock ---------------------------------------------------------------
# Two creates of one name at once: exactly one makes it, the other is
# refused naming the holder (or, had it started later, says it exists).
kbe --pool kf create x a 2> /tmp/kf.x1 & p1=$!
kbe --pool kf create x a 2> /tmp/kf.x2 & p2=$!
s1=0; wait $p1 || s1=$?
s2=0; wait $p2 || s2=$?
same "$(( (s1 == 0) + (s2 == 0) ))" 1
cat /tmp/kf.x1 /tmp/kf.x2 | grep -q -e 'held by pid [0-9]* (kbe --pool kf create x a)' -e 'already exists' \
    || fail "the loser did not say why: $(cat /tmp/kf.x1 /tmp/kf.x2)"
same "$(zfs list -H -o name -r kf/ROOT/x | wc -l)" 3
sane
# A create racing a destroy: whichever runs, the pool is consistent.
kbe --pool kf create y a 2> /tmp/kf.y1 & p1=$!
kbe --pool kf destroy x 2> /tmp/kf.y2 & p2=$!
wait $p1 || true
wait $p2 || true
sane
same "$(journal)" -
for be in x y; do
    if zfs list kf/ROOT/$be > /dev/null 2>&1; then
        same "$(zfs list -H -o name -r kf/ROOT/$be | wc -l)" 3
        kbe --pool kf destroy $be
    fi
done
same "$(everything)" "$before"
# A held lock is named in the refusal.
if command -v flock > /dev/null; then
    (
        flock 9
        echo "pid 4242 (kbe test)" >&9
        refuses 1 'held by pid 4242 (kbe test)' kbe --pool kf create z a
    ) 9> /run/kld/kbe-kf.lock
    refuses 1 'does not exist' zfs list kf/ROOT/z
fi

# ---- issue 17 #19: destroying the rollback target ---------------------------
kbe --pool kf create r a
kbe --pool kf activate r
kbe --pool kf rollback
same "$(zfs get -H -o value kld:previous-be kf/ROOT)" r
# prune still keeps it.
kbe --pool kf prune --keep 0 2> /tmp/kf.err
grep -q 'keeping r: .*rollback target' /tmp/kf.err || fail "prune: $(cat /tmp/kf.err)"
zfs list kf/ROOT/r > /dev/null
# Named, it is destroyed and the record cleared, saying so.
kbe --pool kf destroy r 2> /tmp/kf.err
grep -q 'rollback target' /tmp/kf.err || fail "destroy did not say it cleared the record: $(cat /tmp/kf.err)"
refuses 1 'does not exist' zfs list kf/ROOT/r
same "$(zfs get -H -o value kld:previous-be kf/ROOT)" -
refuses 1 'no rollback target' kbe --pool kf rollback
# The next-boot one stays protected.
refuses 1 'the pool boots it next' kbe --pool kf destroy a
zpool destroy kf
