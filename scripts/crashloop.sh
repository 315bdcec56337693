#!/bin/sh
# Crash loop (issue 12): kill -9 a 'sios up' node CRASHES times (default 100) at random
# points while clients append through its admin socket and chat through its API; after
# every restart every receipted record must be in the log and verify, and the log must
# verify. Prints the crashes survived and the receipted records lost (must be 0).
# Drives the real binary; takes several minutes. Not part of 'go test' in CI, which runs
# the same test with 3 crashes.
#
#   scripts/crashloop.sh [CRASHES] [SEED]
set -eu
cd "$(dirname "$0")/.."
SIOS_CRASHLOOP_CRASHES="${1:-100}" SIOS_CRASHLOOP_SEED="${2:-$(date +%s)}" \
	go test ./cmd/sios -run '^TestCrashLoop$' -count=1 -v -timeout 3h | grep -E 'CRASHLOOP|crash [0-9]+/|^(--- |ok|FAIL|PASS)|Error|error'
