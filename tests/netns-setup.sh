#!/bin/sh
# Prepares loopback inside a PRIVATE network namespace for the mDNS tests (tests/discovery_mdns.rs).
#
# Run it only inside a namespace made for the tests, e.g.
#   unshare -n sh -c 'tests/netns-setup.sh && cargo test --offline -- --include-ignored'
# It refuses to run when any interface other than loopback exists, so it can never touch a
# real network. Idempotent: running it twice is harmless.
set -eu

if ! command -v ip >/dev/null 2>&1; then
    echo "netns-setup: the 'ip' command (iproute2) is missing." >&2
    echo "  Debian/Ubuntu: apt-get install iproute2   Fedora: dnf install iproute   Alpine: apk add iproute2" >&2
    exit 1
fi

# Only loopback may exist: otherwise this is not a private namespace.
others=$(awk -F: 'NR > 2 { gsub(/ /, "", $1); if ($1 != "lo") print $1 }' /proc/self/net/dev)
if [ -n "$others" ]; then
    echo "netns-setup: refusing to run: interfaces other than lo exist ($others)." >&2
    echo "  Run inside a private network namespace: unshare -n sh -c 'tests/netns-setup.sh && ...'" >&2
    exit 1
fi

ip link set lo up
# Loopback lacks the MULTICAST flag by default; mdns-sd's multicast sends need it and a route.
ip link set lo multicast on
ip route replace 224.0.0.0/4 dev lo
ip -6 route replace ff00::/8 dev lo table local 2>/dev/null || ip -6 route replace ff00::/8 dev lo 2>/dev/null || true
