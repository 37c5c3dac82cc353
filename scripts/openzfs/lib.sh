# Shared by scripts/openzfs/*: where things are cached and which versions.
# Sourced, not run.

ZBK_OPENZFS_CACHE="${ZBK_OPENZFS_CACHE:-/var/cache/zbk-openzfs}"
# OpenZFS from bookworm-backports (contrib). Plain bookworm has 2.1.11.
ZFS_VERSION="2.3.2"
ZFS_DEB_VERSION="2.3.2-2~bpo12+2"
# Modules the initramfs loads, in this order, to mount the host root (9p) and
# the overlay.
INITRAMFS_MODULES="virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci 9pnet 9pnet_virtio netfs fscache 9p overlay"

_here_lib="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

die() { echo "openzfs: $*" >&2; exit 1; }

timed() {
  local what="$1"; shift
  local t0=$SECONDS
  echo "openzfs setup: $what"
  "$@"
  echo "openzfs setup: $what: done in $((SECONDS - t0)) s"
}

# The guest kernel: the one Debian's linux-image-amd64 points at now. setup
# records it, so run/stop work offline and agree with the cached build.
_kver_file="$ZBK_OPENZFS_CACHE/guest-kernel"
# setup calls this after refreshing the package lists (stale lists name a
# kernel the mirror no longer has).
resolve_guest_kernel() {
  GUEST_KVER="$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {sub("linux-image-", "", $2); print $2; exit}')"
  [ -n "$GUEST_KVER" ] || die "cannot tell the kernel version of Debian's linux-image-amd64 (apt-cache depends linux-image-amd64)"
  mkdir -p "$ZBK_OPENZFS_CACHE" && echo "$GUEST_KVER" >"$_kver_file"
  guest_paths
}
guest_paths() {
KERNEL_DIR="$ZBK_OPENZFS_CACHE/kernel-$GUEST_KVER"
USERLAND_DIR="$ZBK_OPENZFS_CACHE/userland-$ZFS_VERSION"
MODULES_DIR="$ZBK_OPENZFS_CACHE/modules-$GUEST_KVER-zfs-$ZFS_VERSION"
NETMODS_DIR="$ZBK_OPENZFS_CACHE/netmods-$GUEST_KVER"
# Keyed by the stage-1 script too, so an edit to it rebuilds the image.
INITRAMFS="$ZBK_OPENZFS_CACHE/initramfs-$GUEST_KVER-$(sha1sum "$_here_lib/guest-init" | cut -c1-12).cpio.gz"
}
if [ -n "${GUEST_KVER:-}" ]; then
  guest_paths
elif [ -f "$_kver_file" ]; then
  GUEST_KVER="$(cat "$_kver_file")"
  guest_paths
elif [ "$(basename "$0")" != setup ]; then
  die "no guest prepared in $ZBK_OPENZFS_CACHE: run scripts/openzfs/setup first"
fi
SSH_KEY="$ZBK_OPENZFS_CACHE/id_ed25519"
DROPBEAR_HOSTKEY="$ZBK_OPENZFS_CACHE/dropbear_ed25519_host_key"

# One guest per clone (two clones on one machine never share or collide);
# ZBK_OPENZFS_INSTANCE overrides. Runtime state (pid, port, ssh socket) lives
# under /run, so a reboot forgets it.
ZBK_OPENZFS_INSTANCE="${ZBK_OPENZFS_INSTANCE:-$(printf %s "$(cd "$_here_lib/../.." && pwd)" | sha1sum | cut -c1-10)}"
STATE_DIR="${ZBK_OPENZFS_STATE:-/run/zbk-openzfs/$ZBK_OPENZFS_INSTANCE}"
GUEST_HOST="zbk-guest-$ZBK_OPENZFS_INSTANCE"

# True when the guest of this instance answers over ssh.
guest_alive() {
  [ -f "$STATE_DIR/qemu.pid" ] && kill -0 "$(cat "$STATE_DIR/qemu.pid")" 2>/dev/null \
    && ssh -n -F "$STATE_DIR/ssh_config" -o ConnectTimeout=5 "$GUEST_HOST" true >/dev/null 2>&1
}
