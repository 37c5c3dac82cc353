# Shared by scripts/openzfs/*: where things are cached and which versions.
# Sourced, not run.

ZBK_OPENZFS_CACHE="${ZBK_OPENZFS_CACHE:-/var/cache/zbk-openzfs}"
# OpenZFS from bookworm-backports (contrib): the newest 2.3.x there (plain
# bookworm has 2.1.11). setup resolves and records it (backports keeps only
# its newest build, so a pinned one would vanish); run/stop read the record.
ZFS_SERIES="2.3."
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
_versions_file="$ZBK_OPENZFS_CACHE/versions"
# setup calls this after refreshing the package lists (stale lists name a
# kernel the mirror no longer has). Written whole, then renamed: a run
# reading it meanwhile sees the old or the new record, never half of one.
resolve_versions() {
  GUEST_KVER="$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {sub("linux-image-", "", $2); print $2; exit}')"
  [ -n "$GUEST_KVER" ] || die "cannot tell the kernel version of Debian's linux-image-amd64 (apt-cache depends linux-image-amd64)"
  ZFS_DEB_VERSION="$(apt-cache madison zfs-dkms 2>/dev/null | awk -v s="$ZFS_SERIES" -F' *[|] *' 'index($2, s) == 1 {print $2; exit}')"
  [ -n "$ZFS_DEB_VERSION" ] || die "no OpenZFS ${ZFS_SERIES}x in the package lists (is bookworm-backports contrib configured? apt-cache madison zfs-dkms)"
  # sshd for the guest: the version apt would install now. Not the installed
  # client's: that may be older than anything the mirror still has (a machine
  # image built months ago), and installing host packages may upgrade it.
  SSH_DEB_VERSION="$(apt-cache policy openssh-server 2>/dev/null | awk '/Candidate:/ {print $2; exit}')"
  case "$SSH_DEB_VERSION" in ''|'(none)') die "no openssh-server in the package lists (apt-cache policy openssh-server)" ;; esac
  mkdir -p "$ZBK_OPENZFS_CACHE"
  printf 'GUEST_KVER=%s\nZFS_DEB_VERSION=%s\nSSH_DEB_VERSION=%s\n' "$GUEST_KVER" "$ZFS_DEB_VERSION" "$SSH_DEB_VERSION" >"$_versions_file.tmp.$$"
  mv "$_versions_file.tmp.$$" "$_versions_file"
  guest_paths
}
guest_paths() {
ZFS_VERSION="${ZFS_DEB_VERSION%%-*}"
KERNEL_DIR="$ZBK_OPENZFS_CACHE/kernel-$GUEST_KVER"
# The OpenZFS userland, and OpenSSH's sshd for the guest (unpacked, never installed).
USERLAND_DIR="$ZBK_OPENZFS_CACHE/userland-$ZFS_VERSION-ssh-${SSH_DEB_VERSION//[:~+]/_}"
MODULES_DIR="$ZBK_OPENZFS_CACHE/modules-$GUEST_KVER-zfs-$ZFS_VERSION"
NETMODS_DIR="$ZBK_OPENZFS_CACHE/netmods-$GUEST_KVER"
# Keyed by the stage-1 script too, so an edit to it rebuilds the image.
INITRAMFS="$ZBK_OPENZFS_CACHE/initramfs-$GUEST_KVER-$(sha1sum "$_here_lib/guest-init" | cut -c1-12).cpio.gz"
}
if [ -f "$_versions_file" ] && [ "$(basename "$0")" != setup ]; then
  GUEST_KVER="$(sed -n 's/^GUEST_KVER=//p' "$_versions_file")"
  ZFS_DEB_VERSION="$(sed -n 's/^ZFS_DEB_VERSION=//p' "$_versions_file")"
  SSH_DEB_VERSION="$(sed -n 's/^SSH_DEB_VERSION=//p' "$_versions_file")"
  guest_paths
elif [ "$(basename "$0")" != setup ]; then
  die "no guest prepared in $ZBK_OPENZFS_CACHE: run scripts/openzfs/setup first"
fi
SSH_KEY="$ZBK_OPENZFS_CACHE/id_ed25519"
GUEST_HOSTKEY="$ZBK_OPENZFS_CACHE/ssh_host_ed25519_key"

# One guest per clone (two clones on one machine never share or collide);
# ZBK_OPENZFS_INSTANCE overrides. Runtime state (pid, port, ssh socket) lives
# under /run, so a reboot forgets it.
ZBK_OPENZFS_INSTANCE="${ZBK_OPENZFS_INSTANCE:-$(printf %s "$(cd "$_here_lib/../.." && pwd)" | sha1sum | cut -c1-10)}"
STATE_DIR="${ZBK_OPENZFS_STATE:-/run/zbk-openzfs/$ZBK_OPENZFS_INSTANCE}"
GUEST_HOST="zbk-guest-$ZBK_OPENZFS_INSTANCE"

# The pid of this instance's QEMU if it is running (checked by its command
# line, so a reused pid of another process is never taken for it).
qemu_pid() {
  local pid
  pid="$(cat "$STATE_DIR/qemu.pid" 2>/dev/null)" || return 1
  [ -n "$pid" ] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$STATE_DIR/console.log" && echo "$pid"
}

# True when this instance's guest answers over ssh with ZFS loaded.
guest_alive() {
  qemu_pid >/dev/null && ssh -n -F "$STATE_DIR/ssh_config" -o ConnectTimeout=10 "$GUEST_HOST" 'test -e /dev/zfs' >/dev/null 2>&1
}

# End this instance's QEMU (and with it every ssh session into it).
kill_qemu() {
  local pid
  pid="$(qemu_pid)" || return 0
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.2; done
  kill -9 "$pid" 2>/dev/null || true
}
