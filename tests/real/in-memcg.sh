#!/usr/bin/env bash
# Runs CMD inside a fresh cgroup v1 memory group limited to LIMIT, for the
# real tier's out-of-memory tests: the kernel's OOM killer then SIGKILLs the
# command when its memory (anon + what cannot be reclaimed) passes LIMIT.
#
# Usage: in-memcg.sh LIMIT -- CMD [ARG...]
#   LIMIT: bytes, or with a K/M/G suffix (as memory.limit_in_bytes reads it).
#   The group is <the caller's own memory cgroup>/${IN_MEMCG_TAG:-agentreplay-memcg}.$$,
#   so a test can find (and must remove) its groups by the tag: the script
#   execs CMD (same pid, so signals and exit status are CMD's own) and cannot
#   remove the group itself. memsw (memory + swap) gets the same limit when the
#   kernel has it, so swapping cannot dodge the limit.
#   One line "in-memcg: GROUP limit BYTES" goes to stderr before the exec.
# Exit 77 when no cgroup v1 memory controller is writable here (not root, a
# cgroup v2-only host, a read-only /sys/fs/cgroup), 2 on bad usage.
set -u
if [ $# -lt 3 ] || [ "$2" != "--" ]; then
  echo "usage: in-memcg.sh LIMIT -- CMD [ARG...]" >&2
  exit 2
fi
limit=$1
shift 2
case $limit in
  '' | *[!0-9KkMmGg]* | [KkMmGg]*) echo "in-memcg: bad LIMIT '$limit' (bytes, or a K/M/G suffix)" >&2; exit 2 ;;
esac
root=
while read -r _ mnt fstype opts _; do
  if [ "$fstype" = cgroup ] && [[ ",$opts," == *,memory,* ]]; then root=$mnt; break; fi
done < /proc/mounts
if [ -z "$root" ] || [ ! -w "$root" ]; then
  echo "in-memcg: no writable cgroup v1 memory controller here" >&2
  exit 77
fi
self=$(sed -n 's/^[0-9]*:\(.*,\)\{0,1\}memory\(,[^:]*\)\{0,1\}:\(.*\)$/\3/p' /proc/self/cgroup)
parent=$root${self%/}
[ -d "$parent" ] || parent=$root # a cgroup namespace whose root is the mount's
group=$parent/${IN_MEMCG_TAG:-agentreplay-memcg}.$$
if ! mkdir "$group" 2>/dev/null; then
  echo "in-memcg: cannot create $group" >&2
  exit 77
fi
fail() {
  echo "in-memcg: $1" >&2
  rmdir "$group" 2>/dev/null
  exit "${2:-77}"
}
echo "$limit" > "$group/memory.limit_in_bytes" 2>/dev/null || fail "cannot set $group/memory.limit_in_bytes to $limit" 2
if [ -e "$group/memory.memsw.limit_in_bytes" ]; then
  echo "$limit" > "$group/memory.memsw.limit_in_bytes" 2>/dev/null ||
    fail "cannot set $group/memory.memsw.limit_in_bytes to $limit"
else
  echo 0 > "$group/memory.swappiness" 2>/dev/null || true
fi
echo $$ > "$group/cgroup.procs" 2>/dev/null || fail "cannot move pid $$ into $group"
echo "in-memcg: $group limit $(cat "$group/memory.limit_in_bytes")" >&2
exec "$@"
