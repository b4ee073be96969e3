#!/usr/bin/env bash
# The 32-bit Raspberry Pi checks that `bash .ci/test` leaves out for time (it runs the same ones
# for arm64; docs/testing.md, "ARM"): the armhf package cross-compiled, installed with apt into a
# Debian bookworm armhf root booted under systemd-nspawn (qemu-user), and the library's unit,
# protocol and transport tests built for armv7-unknown-linux-gnueabihf and run under qemu-arm,
# inside a private network namespace. Needs root (as .ci/test). Prints the package checks'
# `package: ok` lines and cargo's test results, then `N passed, N failed` (failed checks or tests
# count) and exits non-zero when anything failed.
#
#   bash crates/ship-gateway/tests/armhf.sh
set -euo pipefail
cd "$(dirname "$0")/../../.."

say() { printf 'armhf.sh: [%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
log=target/armhf-check
rm -rf "$log"
mkdir -p "$log"

export CARGO_TARGET_ARMV7_UNKNOWN_LINUX_GNUEABIHF_LINKER=arm-linux-gnueabihf-gcc
export CC_armv7_unknown_linux_gnueabihf=arm-linux-gnueabihf-gcc
export CARGO_TARGET_ARMV7_UNKNOWN_LINUX_GNUEABIHF_RUNNER="qemu-arm-static -L /usr/arm-linux-gnueabihf"
tests=(--target armv7-unknown-linux-gnueabihf -p ship-hub --lib --test protocol --test transport)

started=$(now)
say "building the armhf package (crates/ship-gateway/debian/build.sh armhf)"
deb=$(bash crates/ship-gateway/debian/build.sh armhf | tail -1)
say "built $deb in $(since "$started") s"

started=$(now)
say "booting it in a Debian armhf container under qemu-user (package.sh boot)"
set +e
bash crates/ship-gateway/tests/package.sh boot "$deb" 2>&1 | tee "$log/boot.log"
boot_status=${PIPESTATUS[0]}
set -e
say "booted and checked in $(since "$started") s"

started=$(now)
say "building the library's tests for armv7"
cargo test "${tests[@]}" --no-run --quiet
say "built them in $(since "$started") s"
started=$(now)
say "running them under qemu-arm in a private network namespace"
set +e
unshare --net bash -c 'ip link set lo up && cargo test --offline --no-fail-fast "$@"' _ "${tests[@]}" 2>&1 |
  tee "$log/tests.log"
status=${PIPESTATUS[0]}
set -e
say "ran them in $(since "$started") s"

# cargo or package.sh failing without a failed test or check (a crash, a build error) counts as
# one failure.
awk -v status="$status" -v boot_status="$boot_status" '
  /^package: ok / { p++ }
  /^package: FAIL / { f++ }
  /^test result: / { for (i = 1; i < NF; i++) { if ($(i+1) ~ /^passed;?$/) p += $i; if ($(i+1) ~ /^failed;?$/) { f += $i; t += $i } } }
  /^package: FAIL / { b++ }
  END { if (status != 0 && t == 0) f++; if (boot_status != 0 && b == 0) f++; print p + 0 " passed, " f + 0 " failed"; exit f > 0 }
' "$log/boot.log" "$log/tests.log"
