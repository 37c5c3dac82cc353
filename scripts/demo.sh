#!/usr/bin/env bash
# The main job end to end on an embedded default, no AWS account needed:
# a scratch file-backed pool (or, with --btrfs, a scratch loop-mounted
# btrfs), a local directory store, a full and an incremental push, status,
# a restore into a new dataset (btrfs: a new directory), a comparison of
# every file, then cleanup. Run as root on Debian:
#   bash scripts/demo.sh            # ZFS (zfs-fuse)
#   bash scripts/demo.sh --btrfs    # btrfs (kernel btrfs, btrfs-progs)
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$PWD"
SOURCE=zfs
[ "${1:-}" = "--btrfs" ] && SOURCE=btrfs

if [ "$SOURCE" = btrfs ]; then bash scripts/install-btrfs.sh >/dev/null; else bash scripts/install-zfs-fuse.sh >/dev/null; fi
[ -d node_modules ] || npm ci --no-audit --no-fund
[ -f dist/commands/push.js ] || npm run build >/dev/null

WORK="$(mktemp -d /tmp/zbk-demo.XXXXXX)"
POOL="zbkdemo$$"
cleanup() {
  if [ "$SOURCE" = btrfs ]; then
    umount "$WORK/mnt" >/dev/null 2>&1 || umount -l "$WORK/mnt" >/dev/null 2>&1 || true
  else
    zpool destroy -f "$POOL" >/dev/null 2>&1 || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

zbk() { node "$REPO/bin/run.js" "$@"; }
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

if [ "$SOURCE" = btrfs ]; then
  say "scratch btrfs in $WORK"
  truncate -s 512M "$WORK/fs.img"
  mkfs.btrfs -q "$WORK/fs.img" >/dev/null 2>&1
  mkdir "$WORK/mnt"
  mount -o loop "$WORK/fs.img" "$WORK/mnt"
  btrfs -q subvolume create "$WORK/mnt/photos"
  DATASET="$WORK/mnt/photos"
  MNT="$DATASET"
  TARGET="$WORK/mnt/restored"
  snap() { zbk snapshot "$DATASET" --name "$1"; }
  snapdir() { echo "$WORK/mnt/.zbk/$(btrfs subvolume show "$DATASET" | awk '$1 == "UUID:" {print $2}')/snapshots/$1"; }
  restored() { echo "$TARGET/$1"; }
else
  say "scratch pool $POOL in $WORK"
  truncate -s 512M "$WORK/pool.img"
  zpool create -f -m "$WORK/mnt" "$POOL" "$WORK/pool.img"
  zfs create "$POOL/photos"
  DATASET="$POOL/photos"
  MNT="$(zfs get -Hp -o value mountpoint "$DATASET")"
  TARGET="$POOL/restored"
  snap() { zbk snapshot "$DATASET" --name "$1"; }
  snapdir() { if [ -d "$MNT/.zfs/snapshot/$1" ]; then echo "$MNT/.zfs/snapshot/$1"; else echo "$MNT"; fi; }
  restored() { zfs get -Hp -o value mountpoint "$TARGET"; }
fi

export ZBK_CONFIG="$WORK/config.toml"
printf 'demo passphrase, not for real use\n' > "$WORK/passphrase"
chmod 600 "$WORK/passphrase"
export ZBK_PASSPHRASE_FILE="$WORK/passphrase"

say "zbk init (local store $WORK/store)"
zbk init --store "file://$WORK/store" --dataset "$DATASET" --state-dir "$WORK/state" --part-size 8MiB --volume-size 16MiB

say "sample files"
mkdir -p "$MNT/2024/summer" "$MNT/2025"
for i in 1 2 3 4 5; do head -c $((1024 * 1024 * i)) /dev/urandom > "$MNT/2024/summer/IMG_000$i.jpg"; done
echo "family notes" > "$MNT/notes.txt"
ln -s 2024/summer/IMG_0001.jpg "$MNT/cover.jpg"
snap day1

say "zbk push (full)"
zbk push "$DATASET"

say "change files, snapshot, zbk push (incremental)"
for i in 1 2; do head -c $((2 * 1024 * 1024)) /dev/urandom > "$MNT/2025/IMG_100$i.jpg"; done
rm "$MNT/2024/summer/IMG_0002.jpg"
echo "more notes" >> "$MNT/notes.txt"
snap day2
zbk push "$DATASET"

say "zbk status"
zbk status

say "zbk restore plan + run into $TARGET"
zbk restore plan "$DATASET"
zbk restore run "$DATASET" --target "$TARGET" --wait

SRC="$(snapdir day2)"
RMNT="$(restored day2)"
say "compare every file and link of $SRC with $RMNT"
listing() { find . \( -type f -o -type l \) -printf '%p %m %l\n' | sort; find . -type f -print0 | sort -z | xargs -0 sha256sum; }
(cd "$SRC" && listing) > "$WORK/src.sha"
(cd "$RMNT" && listing) > "$WORK/dst.sha"
if diff -u "$WORK/src.sha" "$WORK/dst.sha"; then
  echo "identical: $(grep -c '^[0-9a-f]\{64\} ' "$WORK/src.sha") files, with their modes and links"
else
  echo "DIFFERENT: the restore does not match" >&2
  exit 1
fi
say "done; cleaning up"
