#!/usr/bin/env bash
# Make sure a working `zfs`/`zpool` exists: on machines without kernel ZFS,
# install Debian's zfs-fuse and start its daemon. Idempotent. Needs root.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
if ! command -v zfs >/dev/null 2>&1 || ! command -v zpool >/dev/null 2>&1; then
  apt-get update -qq
  apt-get install -y -qq zfs-fuse >/dev/null
fi
# Kernel ZFS needs no daemon; zfs-fuse does.
if [ -x /usr/sbin/zfs-fuse ] && ! [ -e /proc/spl ] && ! pgrep -x zfs-fuse >/dev/null 2>&1; then
  [ -e /dev/fuse ] || { echo "install-zfs-fuse: /dev/fuse is missing; zfs-fuse cannot run here" >&2; exit 1; }
  /usr/sbin/zfs-fuse
  for _ in $(seq 1 50); do
    zpool list >/dev/null 2>&1 && break
    sleep 0.2
  done
fi
zpool list >/dev/null 2>&1 || { echo "install-zfs-fuse: zpool does not answer after starting zfs-fuse" >&2; exit 1; }
echo "zfs ready: $(command -v zfs)"
