#!/bin/bash
# Runs inside LocalStack once it is ready: the bucket the store suite uses.
set -euo pipefail
awslocal s3 mb s3://zbk-test
