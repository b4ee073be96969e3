#!/usr/bin/env bash
# Builds ship-gateway's Debian packages from a clean checkout, cross-compiled for the Raspberry Pi
# (docs/gateway.md, "Raspberry Pi"):
#
#   bash crates/ship-gateway/debian/build.sh                 # arm64 and armhf
#   bash crates/ship-gateway/debian/build.sh arm64 amd64     # any of amd64, arm64, armhf
#
# It installs what it needs when it is missing: the Rust target (rustup target add), Debian's C
# cross compiler and C library for the target (ring compiles C and assembly), and cargo-deb
# (cargo install). Installing Debian packages needs root (or sudo); otherwise it says what to
# install. Progress goes to stderr; stdout gets the path of each package built, one per line:
#
#   target/aarch64-unknown-linux-gnu/debian/ship-gateway_0.1.0-1_arm64.deb
#   target/armv7-unknown-linux-gnueabihf/debian/ship-gateway_0.1.0-1_armhf.deb
#
# The cross release builds share nothing with the host's: the first one of each architecture
# compiles every dependency (minutes); later ones only what changed (target/<triple>/release).
set -euo pipefail
cd "$(dirname "$0")/../../.."

say() { printf 'build.sh: [%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

arches=("$@")
[ ${#arches[@]} -gt 0 ] || arches=(arm64 armhf)

# Debian architecture -> Rust target, GNU triple (the cross tools' prefix), Debian packages.
triple_of() {
  case $1 in
  arm64) echo aarch64-linux-gnu ;;
  armhf) echo arm-linux-gnueabihf ;;
  esac
}
target_of() {
  case $1 in
  amd64) echo x86_64-unknown-linux-gnu ;;
  arm64) echo aarch64-unknown-linux-gnu ;;
  armhf) echo armv7-unknown-linux-gnueabihf ;;
  *) echo "build.sh: unknown architecture '$1' (amd64, arm64 or armhf)" >&2; exit 2 ;;
  esac
}

host=$(dpkg --print-architecture 2>/dev/null || echo unknown)
if [ "$host" != amd64 ]; then
  for arch in "${arches[@]}"; do
    if [ "$arch" != "$host" ]; then
      say "cross builds are set up for an amd64 Debian/Ubuntu host only (this is $host): on the Pi itself run 'cargo deb -p ship-gateway'"
      exit 2
    fi
  done
fi

# 1. What is missing: Debian packages (cross compilers), Rust targets, cargo-deb.
apt_missing=()
for arch in "${arches[@]}"; do
  target_of "$arch" >/dev/null
  [ "$arch" = "$host" ] && continue
  triple=$(triple_of "$arch")
  command -v "$triple-gcc" >/dev/null 2>&1 || apt_missing+=("gcc-$triple")
  [ -e "/usr/$triple/include/stdio.h" ] || apt_missing+=("libc6-dev-$arch-cross")
done
if [ ${#apt_missing[@]} -gt 0 ]; then
  sudo=()
  [ "$(id -u)" = 0 ] || sudo=(sudo)
  if command -v apt-get >/dev/null 2>&1 && { [ ${#sudo[@]} = 0 ] || sudo -n true 2>/dev/null; }; then
    say "installing ${apt_missing[*]} (the C cross compiler and C library ring needs)"
    started=$(now)
    "${sudo[@]}" apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
      "${apt_missing[@]}" >/dev/null
    say "installed them in $(since "$started") s"
  else
    say "missing ${apt_missing[*]}: install them (sudo apt-get install ${apt_missing[*]}) and run again"
    exit 2
  fi
fi
installed_targets=$(rustup target list --installed 2>/dev/null || true)
for arch in "${arches[@]}"; do
  target=$(target_of "$arch")
  if ! grep -qx "$target" <<<"$installed_targets"; then
    say "adding the Rust target $target (rustup target add $target)"
    rustup target add "$target" >&2
  fi
done
if ! command -v cargo-deb >/dev/null 2>&1; then
  say "installing cargo-deb (once; cargo install cargo-deb --locked)"
  started=$(now)
  cargo install cargo-deb --locked --quiet
  say "installed cargo-deb in $(since "$started") s"
fi

# 2. The packages. The linker and C compiler of each target are given here (no .cargo/config.toml
#    needed); cargo-deb strips with <triple>-strip and names the architecture itself.
for arch in "${arches[@]}"; do
  target=$(target_of "$arch")
  say "building the $arch package (cargo deb -p ship-gateway --target $target; release profile)"
  started=$(now)
  env=()
  if [ "$arch" != "$host" ]; then
    triple=$(triple_of "$arch")
    upper=$(tr 'a-z-' 'A-Z_' <<<"$target")
    env=("CARGO_TARGET_${upper}_LINKER=$triple-gcc" "CC_${target//-/_}=$triple-gcc"
      "AR_${target//-/_}=$triple-ar")
  fi
  if [ "$arch" = "$host" ]; then
    deb=$(cargo deb -p ship-gateway --quiet | tail -1)
  else
    deb=$(env "${env[@]}" cargo deb -p ship-gateway --target "$target" --quiet | tail -1)
  fi
  say "built $deb in $(since "$started") s"
  echo "$deb"
done
