#!/usr/bin/env bash
# Prepares a fresh private network namespace for the test suite: loopback up, with multicast, so
# mDNS tests can run on it. Idempotent. Run only inside a namespace (.ci/test does).
set -euo pipefail
if ! command -v ip >/dev/null 2>&1; then
  echo "tests/netns-setup.sh: 'ip' (iproute2) is missing: apt-get install iproute2" >&2
  exit 2
fi
ifaces=$(awk -F: 'NR > 2 { gsub(/ /, "", $1); print $1 }' /proc/self/net/dev | tr '\n' ' ')
if [ "$ifaces" != "lo " ]; then
  echo "tests/netns-setup.sh: refusing: this namespace has interfaces other than lo ($ifaces)" >&2
  exit 2
fi
ip link set lo up
