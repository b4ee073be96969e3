#!/bin/sh
# Prepares a PRIVATE network namespace for the mDNS tests (tests/discovery/mdns.rs).
#
# Run it only inside a namespace made for the tests, e.g.
#   unshare -n sh -c 'tests/netns-setup.sh && cargo test --offline -- --include-ignored'
# It refuses to run when any interface other than loopback exists, so it can never touch a real
# network. Idempotent: running it twice is harmless.
#
# What the tests need (measured with mdns-sd 0.21.7, see docs/discovery.md): only loopback up.
# mdns-sd uses loopback by default, sends with IP_MULTICAST_IF + IP_MULTICAST_LOOP, and the
# kernel delivers those packets to every socket of the namespace that joined 224.0.0.251 on lo,
# without the MULTICAST flag on lo and without a multicast route. The link-local IPv6 test makes
# its own veth pair (shipt0/shipt1) and deletes it again.
set -eu

if ! command -v ip >/dev/null 2>&1; then
    echo "netns-setup: the 'ip' command (iproute2) is missing; the tests also need it." >&2
    echo "  Debian/Ubuntu: apt-get install iproute2   Fedora: dnf install iproute   Alpine: apk add iproute2" >&2
    exit 1
fi

# Only loopback may exist: otherwise this is not a private namespace.
others=$(awk -F: 'NR > 2 { gsub(/ /, "", $1); if ($1 != "lo") print $1 }' /proc/self/net/dev)
if [ -n "$others" ]; then
    echo "netns-setup: refusing to run: interfaces other than lo exist:" $others >&2
    echo "  Run it inside a private network namespace: unshare -n sh -c 'tests/netns-setup.sh && ...'" >&2
    exit 1
fi

ip link set lo up
