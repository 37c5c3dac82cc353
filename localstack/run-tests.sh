#!/usr/bin/env bash
# Run the store test suite against LocalStack (npm run test:localstack).
# Exit 2 when Docker is not available.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here/.."

if ! command -v docker >/dev/null 2>&1 || ! docker info >/dev/null 2>&1; then
  echo "run-tests: Docker is not available (docker info failed); cannot start LocalStack." >&2
  echo "run-tests: point the suite at another endpoint instead: see localstack/README.md" >&2
  exit 2
fi

compose=(docker compose -f "$here/docker-compose.yml")
cleanup() { "${compose[@]}" down --volumes >/dev/null 2>&1 || true; }
trap cleanup EXIT

"${compose[@]}" up -d --wait

export ZBK_TEST_S3_ENDPOINT=http://localhost:4566
export ZBK_TEST_S3_BUCKET=zbk-test
export ZBK_TEST_S3_REGION=us-east-1
export ZBK_TEST_S3_PATH_STYLE=true
# LocalStack's documented test credentials (not secrets).
export AWS_ACCESS_KEY_ID=test
export AWS_SECRET_ACCESS_KEY=test
export AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED=true

npm run test:s3
