#!/usr/bin/env bash
# The main job end to end on an embedded default, no AWS account needed:
# a scratch file-backed pool, a local directory store, a full and an
# incremental push, status, a restore into a new dataset, a comparison of
# every file, then cleanup. Run as root on Debian: bash scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$PWD"

bash scripts/install-zfs-fuse.sh >/dev/null
[ -d node_modules ] || npm ci --no-audit --no-fund
[ -f dist/commands/push.js ] || npm run build >/dev/null

WORK="$(mktemp -d /tmp/zbk-demo.XXXXXX)"
POOL="zbkdemo$$"
cleanup() {
  zpool destroy -f "$POOL" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

zbk() { node "$REPO/bin/run.js" "$@"; }
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "scratch pool $POOL in $WORK"
truncate -s 512M "$WORK/pool.img"
zpool create -f -m "$WORK/mnt" "$POOL" "$WORK/pool.img"
zfs create "$POOL/photos"
MNT="$(zfs get -Hp -o value mountpoint "$POOL/photos")"

say "sample files"
mkdir -p "$MNT/2024/summer" "$MNT/2025"
for i in 1 2 3 4 5; do head -c $((1024 * 1024 * i)) /dev/urandom > "$MNT/2024/summer/IMG_000$i.jpg"; done
echo "family notes" > "$MNT/notes.txt"
zfs snapshot "$POOL/photos@day1"

export ZBK_CONFIG="$WORK/config.toml"
printf 'demo passphrase, not for real use\n' > "$WORK/passphrase"
chmod 600 "$WORK/passphrase"
export ZBK_PASSPHRASE_FILE="$WORK/passphrase"

say "zbk init (local store $WORK/store)"
zbk init --store "file://$WORK/store" --dataset "$POOL/photos" --state-dir "$WORK/state" --part-size 8MiB --volume-size 16MiB

say "zbk push (full)"
zbk push "$POOL/photos"

say "change files, snapshot, zbk push (incremental)"
for i in 1 2; do head -c $((2 * 1024 * 1024)) /dev/urandom > "$MNT/2025/IMG_100$i.jpg"; done
rm "$MNT/2024/summer/IMG_0002.jpg"
echo "more notes" >> "$MNT/notes.txt"
zfs snapshot "$POOL/photos@day2"
zbk push "$POOL/photos"

say "zbk status"
zbk status

say "zbk restore plan + run into $POOL/restored"
zbk restore plan "$POOL/photos"
zbk restore run "$POOL/photos" --target "$POOL/restored" --wait

say "compare every file of $POOL/photos@day2 with $POOL/restored"
RMNT="$(zfs get -Hp -o value mountpoint "$POOL/restored")"
(cd "$MNT/.zfs/snapshot/day2" 2>/dev/null || cd "$MNT"; find . -type f -print0 | sort -z | xargs -0 sha256sum) > "$WORK/src.sha"
(cd "$RMNT" && find . -type f -print0 | sort -z | xargs -0 sha256sum) > "$WORK/dst.sha"
if diff -u "$WORK/src.sha" "$WORK/dst.sha"; then
  echo "identical: $(wc -l < "$WORK/src.sha") files"
else
  echo "DIFFERENT: the restore does not match" >&2
  exit 1
fi
say "done; cleaning up"
