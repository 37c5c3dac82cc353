#!/usr/bin/env bash
# The README's test command: on a fresh Debian machine as root, installs what
# the tests need (zfs-fuse, npm packages), then lint, type-check and all tests.
# Tests that need ZFS use real zfs/zpool on file-backed pools in temp dirs.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

bash scripts/install-zfs-fuse.sh
if [ -n "${CI:-}" ] || [ ! -d node_modules ]; then
  npm ci --no-audit --no-fund
fi
npm run lint
npm run typecheck
npm test
