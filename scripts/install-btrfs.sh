#!/usr/bin/env bash
# Make sure real btrfs works for the tests (test/helpers/btrfs.ts): Debian's
# btrfs-progs (6.2 on bookworm) and a kernel with btrfs, built in or as the
# module. Idempotent and quiet. Needs root. Without kernel btrfs it fails
# under CI (the btrfs tests must run there) and warns elsewhere (they skip).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
if ! command -v btrfs >/dev/null 2>&1 || ! command -v mkfs.btrfs >/dev/null 2>&1; then
  apt-get install -y -qq btrfs-progs >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq btrfs-progs >/dev/null; }
fi
grep -qw btrfs /proc/filesystems || modprobe btrfs 2>/dev/null || true
if ! grep -qw btrfs /proc/filesystems; then
  echo "install-btrfs: this kernel has no btrfs (not built in, and modprobe btrfs failed)" >&2
  [ -z "${CI:-}" ] || exit 1
  exit 0
fi
echo "btrfs ready: $(btrfs --version | head -n 1)"
