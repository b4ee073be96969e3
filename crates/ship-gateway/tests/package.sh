#!/usr/bin/env bash
# Checks of the Debian package built by `cargo deb` (run by .ci/test; see docs/gateway.md,
# "Debian package"). Each check prints `package: ok <what>` or `package: FAIL <what>`; the exit
# status is non-zero if any failed.
#
#   bash tests/package.sh check DEB   contents, control fields, conffile, lintian, binary size and
#                                     debug info, the unit's systemd-analyze security rating
#   bash tests/package.sh start DEB   extracts DEB into a throwaway root and starts the gateway
#                                     from there with the packaged config, as a non-root user, on
#                                     loopback, with its data dir in a temporary directory. Run it
#                                     only inside a private network namespace (mDNS is on, as
#                                     packaged): .ci/test does.
#   bash tests/package.sh postinst DEB  runs the postinst (first install, then an upgrade) in a
#                                     private mount namespace with throwaway account databases:
#                                     it creates the user, the data dir and the secret files
#                                     (root:ship-gateway 0640, read by the service, not by
#                                     others) and prints the SKI
#   bash tests/package.sh boot DEB    installs DEB with `apt install` into a Debian bookworm root
#                                     of the package's architecture booted under systemd-nspawn
#                                     (private network: only the container's loopback), and checks
#                                     the service with systemctl and journalctl: active, its SKI in
#                                     the journal, its config read, the sandbox at run time, kill -9
#                                     and Restart=, a second gateway pairs and data flows both ways,
#                                     systemctl stop closes the SHIP connection in time, the start
#                                     limit, apt purge. A foreign architecture (arm64 on amd64) runs
#                                     under qemu-user through binfmt_misc. Needs root, mmdebstrap
#                                     and systemd-nspawn; the root file system is made once and
#                                     kept in target/nspawn/ (the container runs on a throwaway
#                                     overlay of it).
set -euo pipefail

failed=0
ok() { echo "package: ok $*"; }
fail() { echo "package: FAIL $*"; failed=1; }
check() { # check WHAT COMMAND...: runs COMMAND, ok/FAIL by its status
  local what=$1; shift
  if "$@"; then ok "$what"; else fail "$what"; fi
}

# The most the unit may score in `systemd-analyze security` (lower is better; <= 2.0 is "OK").
MAX_EXPOSURE=2.0
# The largest binary we ship (issue: under 10 MB on a Raspberry Pi).
MAX_BINARY_BYTES=$((10 * 1000 * 1000))

mode=${1:?usage: package.sh check|start|postinst|boot DEB}
deb=${2:?usage: package.sh check|start|postinst|boot DEB}
work=$(mktemp -d)
pid=
leader=
nspawn=
# Powers the container off (systemctl poweroff inside: under qemu-user, nspawn's own SIGTERM
# arrives as a different real-time signal and starts rescue.target instead), then kills what is
# left after 60 s.
stop_container() {
  env -i PATH=/usr/bin:/bin nsenter -t "$leader" -m -u -i -n -p -C -- systemctl poweroff >/dev/null 2>&1 || true
  local i
  for i in $(seq 300); do kill -0 "$nspawn" 2>/dev/null || break; sleep 0.2; done
  if kill -0 "$nspawn" 2>/dev/null; then
    kill -9 "$leader" 2>/dev/null || true
    wait "$nspawn" 2>/dev/null || true
    return
  fi
  wait "$nspawn" 2>/dev/null || true
  leader=
}
cleanup() {
  if [ -n "$pid" ]; then kill -9 "$pid" 2>/dev/null || true; fi
  if [ -n "$leader" ]; then stop_container; fi
  rm -rf "$work"
}
trap cleanup EXIT

case "$mode" in
check)
  dpkg-deb -c "$deb" >"$work/contents"
  dpkg-deb -I "$deb" >"$work/info"
  echo "--- dpkg-deb -c"; cat "$work/contents"
  echo "--- dpkg-deb -I"; cat "$work/info"
  has() { grep -qE "$1" "$work/contents"; }
  check "the binary is /usr/bin/ship-gateway, mode 0755" has '^-rwxr-xr-x .* \./usr/bin/ship-gateway$'
  check "the default config is /etc/ship-gateway/config.toml" has ' \./etc/ship-gateway/config\.toml$'
  check "the systemd unit is installed" has ' \./(usr/)?lib/systemd/system/ship-gateway\.service$'
  check "no debug symbols are shipped" bash -c "! grep -qE '\.(debug|dwp)$|/usr/lib/debug/' '$work/contents'"
  check "the config is a conffile" bash -c "dpkg-deb -e '$deb' '$work/control' && grep -qx /etc/ship-gateway/config.toml '$work/control/conffiles'"
  check "postinst creates the user and prints the SKI" grep -q 'ship-gateway ski' "$work/control/postinst"
  check "the package depends on adduser" grep -qE '^ Depends:.*adduser' "$work/info"
  check "the OpenAPI description is installed" has ' \./usr/share/doc/ship-gateway/openapi\.json$'

  dpkg-deb -x "$deb" "$work/root"
  bin="$work/root/usr/bin/ship-gateway"
  size=$(stat -c %s "$bin")
  echo "binary size: $size bytes"
  check "the binary is under 10 MB ($size bytes)" test "$size" -lt "$MAX_BINARY_BYTES"
  check "the binary has no DWARF debug info" bash -c "! readelf -S '$bin' 2>/dev/null | grep -q '\.debug_info'"
  check "the packaged config contains no static peer" bash -c "! grep -qE '^[[:space:]]*peers[[:space:]]*=' '$work/root/etc/ship-gateway/config.toml'"

  unit=$(find "$work/root" -name ship-gateway.service | head -1)
  echo "--- systemd-analyze security --offline=yes $unit"
  # Only what is not fully hardened (the full table has ~80 lines), and the verdict.
  systemd-analyze security --offline=yes "$unit" >"$work/security"
  grep -v '^✓' "$work/security"
  exposure=$(sed -n 's/.*Overall exposure level for .*: \([0-9.]*\) .*/\1/p' "$work/security")
  check "the unit's exposure is $exposure (at most $MAX_EXPOSURE)" \
    awk -v e="$exposure" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(e != "" && e + 0 <= m + 0) }'
  # systemd's own check of the unit file (syntax, unknown settings), with the binary's path moved
  # into the extracted tree (verify also checks that ExecStart is executable).
  sed "s|^ExecStart=/usr/bin/|ExecStart=$work/root/usr/bin/|" "$unit" >"$work/ship-gateway.service"
  check "systemd-analyze verify finds nothing in the unit" \
    bash -c "out=\$(systemd-analyze verify '$work/ship-gateway.service' 2>&1); echo \"\$out\"; test -z \"\$out\""
  check "the unit runs as the ship-gateway user" grep -qx 'User=ship-gateway' "$unit"
  check "the unit's data dir is /var/lib/ship-gateway, mode 0700" \
    bash -c "grep -qx 'StateDirectory=ship-gateway' '$unit' && grep -qx 'StateDirectoryMode=0700' '$unit'"

  echo "--- lintian"
  # Lintian's verdict is shown in full; errors fail the check (warnings are reported only).
  lintian --tag-display-limit 0 "$deb" 2>&1 | tee "$work/lintian" || true
  check "lintian reports no errors" bash -c "! grep -q '^E: ' '$work/lintian'"
  ;;

start)
  root="$work/root"
  dpkg-deb -x "$deb" "$root"
  chmod 0755 "$work" "$root"
  data="$work/data"
  mkdir -m 0700 "$data"
  # As the real root: drop to nobody (no capabilities, no groups). Otherwise (a non-root user,
  # possibly mapped to root in the suite's user namespace) we already are not root.
  if [ "$(id -u)" = 0 ] && awk '$1 == 0 && $2 == 0 { f = 1 } END { exit !f }' /proc/self/uid_map; then
    chown 65534:65534 "$data"
    as_user=(setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all --bounding-set=-all)
  else
    as_user=()
  fi
  # The unit's own command line, with the installed paths moved into the throwaway root; then the
  # test's overrides: its data dir, loopback and a free port.
  unit=$(find "$root" -name ship-gateway.service | head -1)
  exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
  read -r -a command <<<"${exec_start//\/etc\/ship-gateway\//$root/etc/ship-gateway/}"
  command[0]=$root${command[0]}
  echo "starting: ${command[*]} --data-dir $data --bind 127.0.0.1 --port 0"
  "${as_user[@]}" "${command[@]}" --data-dir "$data" --bind 127.0.0.1 --port 0 \
    >"$work/out" 2>"$work/err" </dev/null &
  pid=$!
  for _ in $(seq 300); do
    grep -q 'listening on' "$work/out" && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "--- stdout"; cat "$work/out"; echo "--- stderr"; cat "$work/err"
  line=$(grep -m1 'listening on' "$work/out" || true)
  check "it starts and prints its listening line" test -n "$line"
  ski=$(sed -n 's/.*(SKI \([0-9a-f]\{40\}\),.*/\1/p' <<<"$line")
  address=$(sed -n 's/.*listening on \([^ ]*\) .*/\1/p' <<<"$line")
  check "it prints its SKI ($ski)" test -n "$ski"
  check "the SKI is the one 'ship-gateway ski' reports" \
    test "$ski" = "$("${as_user[@]}" "$root/usr/bin/ship-gateway" --data-dir "$data" ski)"
  # Its uid as seen from the initial user namespace (the suite may run in a user namespace).
  uid=$(awk '/^Uid:/ { print $2 }' "/proc/$pid/status")
  outer_uid=$(awk -v u="$uid" 'u >= $1 && u < $1 + $3 { print $2 + u - $1 }' "/proc/$pid/uid_map")
  check "it runs as a non-root user (uid $outer_uid)" test -n "$outer_uid" -a "$outer_uid" != 0
  check "it listens on loopback only ($address)" bash -c "[[ '$address' == 127.0.0.1:* ]]"
  port=${address##*:}
  check "it accepts a TCP connection on $address" bash -c "exec 3<>/dev/tcp/127.0.0.1/$port"
  check "mDNS is on, as packaged" grep -q 'mDNS on' "$work/out"
  check "the identity is in the data dir, key mode 0600" \
    bash -c "test \"\$(stat -c %a '$data/key.pem')\" = 600"
  kill -TERM "$pid"
  status=0
  wait "$pid" || status=$?
  pid=
  check "SIGTERM stops it with status 0" test "$status" = 0
  ;;
postinst)
  # The maintainer script as dpkg runs it on a first install (`postinst configure`), in a private
  # mount namespace where this machine's /etc (account databases, systemd links), /var/lib and
  # /usr/bin are replaced by throwaway copies (so the user it creates and the files it writes vanish with
  # the namespace), with the package's binary added to /usr/bin. Needs root (it creates a user).
  if [ "$(id -u)" != 0 ] || ! awk '$1 == 0 && $2 == 0 { f = 1 } END { exit !f }' /proc/self/uid_map; then
    echo "package: SKIPPED the postinst test needs root (it creates a system user)"
    exit 0
  fi
  dpkg-deb -x "$deb" "$work/root"
  dpkg-deb -e "$deb" "$work/control"
  mkdir "$work/bin" "$work/etc"
  cp "$work/root/usr/bin/ship-gateway" "$work/bin/"
  unshare --mount --propagation private bash -euo pipefail -c '
    work=$1
    # /etc: an overlay whose writes (the account databases, systemd links) go to a tmpfs.
    mount -t tmpfs tmpfs "$work/etc"
    mkdir "$work/etc/upper" "$work/etc/work"
    mount -t overlay overlay -o "lowerdir=/etc,upperdir=$work/etc/upper,workdir=$work/etc/work" /etc
    mount -t tmpfs tmpfs /var/lib
    mount -t overlay overlay -o "lowerdir=$work/bin:/usr/bin" /usr/bin
    mount -t overlay overlay \
      -o "lowerdir=$work/root/usr/lib/systemd/system:/usr/lib/systemd/system" /usr/lib/systemd/system
    # dpkg has unpacked the package before it runs the postinst: its /etc/ship-gateway is there.
    mkdir -p /etc/ship-gateway
    cp "$work/root/etc/ship-gateway/config.toml" /etc/ship-gateway/
    # As dpkg runs it (deb-systemd-helper insists).
    export DPKG_MAINTSCRIPT_PACKAGE=ship-gateway DPKG_MAINTSCRIPT_NAME=postinst
    # From here on nothing outside the namespace can change.
    sh "$work/control/postinst" configure >"$work/postinst.out" 2>&1 || echo "exit status $?" >>"$work/postinst.out"
    echo "--- postinst configure"; cat "$work/postinst.out"
    getent passwd ship-gateway >"$work/user" || true
    stat -c "%U %a" /var/lib/ship-gateway >"$work/dir" 2>/dev/null || true
    stat -c "%U %a" /var/lib/ship-gateway/key.pem >"$work/key" 2>/dev/null || true
    runuser -u ship-gateway -- ship-gateway ski >"$work/ski" 2>&1 || true
    readlink /etc/systemd/system/multi-user.target.wants/ship-gateway.service >"$work/enabled" || true
    # The secret files: owner, group and mode; who can read them; the token.
    stat -c "%n %U %G %a" /etc/ship-gateway/http-token /etc/ship-gateway/pin \
      /etc/ship-gateway/pairing-secret >"$work/secrets" 2>&1 || true
    runuser -u ship-gateway -- cat /etc/ship-gateway/http-token >"$work/token" 2>&1 || true
    if runuser -u nobody -- cat /etc/ship-gateway/http-token >/dev/null 2>&1; then
      echo readable >"$work/nobody"
    else
      echo refused >"$work/nobody"
    fi
    # The service reads its secrets as packaged: a PIN written into the PIN file (sudoedit keeps
    # the mode; so does a redirection into the existing file) and the token, on loopback.
    echo 0123ABCD >/etc/ship-gateway/pin
    runuser -u ship-gateway -- ship-gateway --data-dir /var/lib/ship-gateway --json run \
      --no-mdns --bind 127.0.0.1 --port 0 --http 127.0.0.1:0 \
      --http-token-file /etc/ship-gateway/http-token --pin-file /etc/ship-gateway/pin \
      >"$work/run.out" 2>"$work/run.err" </dev/null &
    gateway=$!
    for _ in $(seq 100); do
      grep -q listening "$work/run.out" && break
      kill -0 "$gateway" 2>/dev/null || break
      sleep 0.1
    done
    kill "$gateway" 2>/dev/null || true
    wait "$gateway" 2>/dev/null || true
    cp /etc/ship-gateway/http-token "$work/token.before"
    # A second configure (an upgrade) keeps the identity.
    sh "$work/control/postinst" configure 0.1.0-1 >"$work/again.out" 2>&1 || true
    cp /etc/ship-gateway/http-token "$work/token.after"
    stat -c "%a" /etc/ship-gateway/pin >"$work/pin.after"
  ' _ "$work"
  cat "$work/user" "$work/dir" "$work/key" "$work/ski" 2>/dev/null
  ski=$(cat "$work/ski")
  check "postinst exits with status 0" bash -c "! grep -q '^exit status' '$work/postinst.out'"
  check "postinst creates the ship-gateway system user" grep -q '^ship-gateway:' "$work/user"
  check "the data dir /var/lib/ship-gateway belongs to it, mode 0700" grep -qx 'ship-gateway 700' "$work/dir"
  check "the identity belongs to it, key mode 0600" grep -qx 'ship-gateway 600' "$work/key"
  check "postinst prints the SKI the service will use ($ski)" \
    grep -qx "ship-gateway: this gateway's SKI is $ski" "$work/postinst.out"
  check "the unit is enabled (multi-user.target.wants)" grep -q 'ship-gateway.service$' "$work/enabled"
  check "a second configure prints the same SKI" \
    grep -qx "ship-gateway: this gateway's SKI is $ski" "$work/again.out"
  cat "$work/secrets"; echo "--- the service's run with the packaged secrets"; cat "$work/run.out" "$work/run.err"
  for secret in http-token pin pairing-secret; do
    check "/etc/ship-gateway/$secret is root:ship-gateway, mode 640" \
      grep -qx "/etc/ship-gateway/$secret root ship-gateway 640" "$work/secrets"
  done
  check "the token has 256 bits (64 hex digits) and the service user can read it" \
    grep -qxE '[0-9a-f]{64}' "$work/token"
  check "another user (nobody) cannot read the token" grep -qx refused "$work/nobody"
  check "the service starts with the packaged token file and a PIN file" \
    grep -q '"event":"listening"' "$work/run.out"
  check "a second configure keeps the token and the PIN file's mode" \
    bash -c "cmp -s '$work/token.before' '$work/token.after' && grep -qx 640 '$work/pin.after'"

  # Issue 23: the README's first command run as root (before the package) creates
  # /var/lib/ship-gateway owned by root; the postinst then printed "Permission denied" on key.pem,
  # succeeded, and the service could not read its key. The postinst gives the directory's files
  # to the service's user and keeps the identity. Then root's `ski`, `list`, `qr` and `status`
  # work on the service's directory without writing there, and what would write says to run it
  # as the service's user (never `chown 0`).
  mkdir -p "$work/r/etc" "$work/r/bin"
  cp "$work/root/usr/bin/ship-gateway" "$work/r/bin/"
  unshare --mount --propagation private bash -uo pipefail -c '
    work=$1
    mount -t tmpfs tmpfs "$work/r/etc"
    mkdir "$work/r/etc/upper" "$work/r/etc/work"
    mount -t overlay overlay -o "lowerdir=/etc,upperdir=$work/r/etc/upper,workdir=$work/r/etc/work" /etc
    mkdir -p /etc/ship-gateway
    cp "$work/root/etc/ship-gateway/config.toml" /etc/ship-gateway/
    mount -t tmpfs tmpfs /var/lib
    mount -t overlay overlay -o "lowerdir=$work/r/bin:/usr/bin" /usr/bin
    mount -t overlay overlay \
      -o "lowerdir=$work/root/usr/lib/systemd/system:/usr/lib/systemd/system" /usr/lib/systemd/system
    export DPKG_MAINTSCRIPT_PACKAGE=ship-gateway DPKG_MAINTSCRIPT_NAME=postinst
    # The README'"'"'s first command, as root, before the package (on loopback, no mDNS).
    ship-gateway run --no-mdns --bind 127.0.0.1 --port 0 >"$work/r/run.out" 2>&1 </dev/null &
    pid=$!
    for _ in $(seq 300); do grep -q "listening on" "$work/r/run.out" && break; sleep 0.1; done
    kill -TERM "$pid"; wait "$pid"
    sed -n "s/.*(SKI \([0-9a-f]\{40\}\),.*/\1/p" "$work/r/run.out" >"$work/r/root-ski"
    stat -c "%U %n" /var/lib/ship-gateway/* >"$work/r/before"
    sh "$work/control/postinst" configure >"$work/r/postinst.out" 2>&1 || echo "exit status $?" >>"$work/r/postinst.out"
    echo "--- postinst configure after a run as root"; cat "$work/r/postinst.out"
    find /var/lib/ship-gateway ! -user ship-gateway >"$work/r/not-theirs"
    runuser -u ship-gateway -- ship-gateway ski >"$work/r/service-ski" 2>&1 || true
    # The service runs (as its user); root looks at it.
    runuser -u ship-gateway -- ship-gateway --data-dir /var/lib/ship-gateway run --no-mdns \
      --bind 127.0.0.1 --port 0 >"$work/r/service.out" 2>&1 </dev/null &
    service=$!
    for _ in $(seq 300); do grep -q "listening on" "$work/r/service.out" && break; sleep 0.1; done
    for command in ski list "qr --config /etc/ship-gateway/config.toml" status; do
      # shellcheck disable=SC2086
      ship-gateway $command >"$work/r/as-root-$(echo $command | cut -d" " -f1)" 2>&1
      echo "$command: $?" >>"$work/r/exits"
    done
    kill -TERM "$service"; wait "$service"
    # Without a running gateway `pair` would write pairings.json: it says how to run it.
    ship-gateway pair 0101010101010101010101010101010101010101 >"$work/r/as-root-pair" 2>&1
    echo "pair: $?" >>"$work/r/exits"
    find /var/lib/ship-gateway ! -user ship-gateway >"$work/r/not-theirs-after"
  ' _ "$work"
  echo "--- files after the run as root"; cat "$work/r/before"
  echo "--- as root on the service's data dir (exit statuses)"; cat "$work/r/exits"
  for f in "$work"/r/as-root-*; do echo "--- $f"; cat "$f"; done
  root_ski=$(cat "$work/r/root-ski")
  check "a run as root before the package creates /var/lib/ship-gateway owned by root" \
    grep -q '^root /var/lib/ship-gateway/key.pem$' "$work/r/before"
  check "postinst after a run as root exits with status 0" \
    bash -c "! grep -q '^exit status' '$work/r/postinst.out'"
  check "postinst keeps the identity root created ($root_ski)" \
    grep -qx "ship-gateway: this gateway's SKI is $root_ski" "$work/r/postinst.out"
  check "postinst gives every file in the data dir to ship-gateway" test ! -s "$work/r/not-theirs"
  check "the service's user reads the identity" grep -qx "$root_ski" "$work/r/service-ski"
  check "root's ski, list, qr and status work on the service's data dir" \
    bash -c "grep -qx 'ski: 0' '$work/r/exits' && grep -qx 'list: 0' '$work/r/exits' \
      && grep -qx 'qr --config /etc/ship-gateway/config.toml: 0' '$work/r/exits' \
      && grep -qx 'status: 0' '$work/r/exits'"
  check "root's ski prints the service's SKI" grep -qx "$root_ski" "$work/r/as-root-ski"
  check "root's status shows the running service" grep -q "ship-gateway .* SKI $root_ski" "$work/r/as-root-status"
  check "root's pair without a gateway fails and says to run it as ship-gateway" \
    bash -c "grep -qx 'pair: 1' '$work/r/exits' \
      && grep -q 'run it as ship-gateway: .sudo -u ship-gateway ship-gateway pair' '$work/r/as-root-pair'"
  check "nothing advises chown" bash -c "! grep -qi chown '$work'/r/as-root-*"
  check "root wrote nothing into the service's data dir" test ! -s "$work/r/not-theirs-after"
  ;;
boot)
  # The package as a user installs it: `apt install ./DEB` on a booted Debian, checked with the
  # real systemctl and journalctl. The container: systemd-nspawn --private-network (its own
  # network namespace with nothing but loopback, so the service's mDNS multicasts there only),
  # --volatile=overlay (writes go to a throwaway layer, the cached root stays clean),
  # --register=no --keep-unit (this machine has no systemd of its own), the package bound in
  # read-only at /mnt/ship-test. Commands run in it through nsenter, from this script.
  if [ "$(id -u)" != 0 ] || ! awk '$1 == 0 && $2 == 0 { f = 1 } END { exit !f }' /proc/self/uid_map; then
    echo "package: SKIPPED booting the package under systemd-nspawn needs root"
    exit 0
  fi
  arch=$(dpkg-deb -f "$deb" Architecture)
  host_arch=$(dpkg --print-architecture)
  repo=$(cd "$(dirname "$0")/../../.." && pwd)
  root=$repo/target/nspawn/bookworm-$arch
  t() { date +%s.%N; }
  secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
  # Waits up to $1 seconds for a command to succeed (tried every 0.2 s).
  wait_for() {
    local deadline; deadline=$(awk -v n="$(t)" -v s="$1" 'BEGIN { printf "%d", n + s }'); shift
    until "$@"; do
      [ "$(date +%s)" -lt "$deadline" ] || return 1
      sleep 0.2
    done
  }

  # 1. A foreign architecture runs under qemu-user: binfmt_misc must hand its binaries to the
  #    static emulator, with the F flag (the interpreter is opened once, so it works inside the
  #    container, where /usr/libexec/qemu-binfmt does not exist).
  if [ "$arch" != "$host_arch" ]; then
    case $arch in arm64) qemu=aarch64 ;; armhf) qemu=arm ;; *) qemu=$arch ;; esac
    mountpoint -q /proc/sys/fs/binfmt_misc || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
    update-binfmts --enable "qemu-$qemu" 2>/dev/null || true
    check "binfmt_misc runs $arch binaries with qemu-$qemu-static (enabled, flag F)" \
      bash -c "grep -qx enabled /proc/sys/fs/binfmt_misc/qemu-$qemu && grep -q '^flags: .*F' /proc/sys/fs/binfmt_misc/qemu-$qemu"
  fi

  # 2. The root file system, made once: Debian bookworm (minbase) with systemd as init, and
  #    adduser, the package's one dependency beyond libc, so that `apt install ./DEB` needs no
  #    network. Manual pages and translations are left out (40 MB).
  recipe="mmdebstrap --variant=minbase --architectures=$arch --include=systemd,systemd-sysv,dbus,adduser bookworm"
  if [ "$(cat "$root.recipe" 2>/dev/null)" != "$recipe" ]; then
    rm -rf "$root" "$root.new"
    mkdir -p "$(dirname "$root")"
    echo "making the root file system (once; kept in $root): $recipe"
    started=$(t)
    if ! $recipe --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
        --dpkgopt='path-exclude=/usr/share/info/*' "$root.new" >"$work/mmdebstrap.log" 2>&1; then
      tail -20 "$work/mmdebstrap.log"
      fail "mmdebstrap makes a bookworm $arch root file system (Debian's mirror reachable?)"
      rm -rf "$root.new"
      exit 1
    fi
    mv "$root.new" "$root"
    echo "$recipe" >"$root.recipe"
    echo "made it in $(secs "$started" "$(t)") s ($(du -sh "$root" | cut -f1))"
  fi

  # 3. Boot it.
  mkdir "$work/mnt"
  cp "$deb" "$work/mnt/"
  debname=$(basename "$deb")
  started=$(t)
  systemd-nspawn --quiet --register=no --keep-unit --private-network --volatile=overlay \
    --bind-ro="$work/mnt:/mnt/ship-test" --console=passive -D "$root" -b \
    </dev/null >"$work/nspawn.log" 2>&1 &
  nspawn=$!
  # The container's init: nspawn's child in a PID namespace of its own. (A first child of
  # nspawn's lives in ours only while it sets the container up: taking that one as the leader
  # failed the boot once in a full run.)
  container_leader() {
    local pid ours; ours=$(readlink /proc/self/ns/pid)
    for pid in $(pgrep -P "$nspawn"); do
      if [ "$(readlink "/proc/$pid/ns/pid" 2>/dev/null)" != "$ours" ]; then
        echo "$pid"
        return 0
      fi
    done
    return 1
  }
  wait_for 30 container_leader >/dev/null || true
  leader=$(container_leader || true)
  if [ -z "$leader" ]; then
    cat "$work/nspawn.log"
    kill "$nspawn" 2>/dev/null || true
    fail "systemd-nspawn starts the container"
    exit 1
  fi
  ct_pidns=$(readlink "/proc/$leader/ns/pid")
  ctroot=/proc/$leader/root
  # A command inside the container (every namespace of its init, a clean environment).
  in_ct() {
    env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive \
      nsenter -t "$leader" -m -u -i -n -p -C -- "$@"
  }
  # The host's PID of a process the container knows as $1.
  host_pid() {
    local p
    for p in /proc/[0-9]*; do
      [ "$(readlink "$p/ns/pid" 2>/dev/null)" = "$ct_pidns" ] || continue
      if awk -v want="$1" '/^NSpid:/ { found = ($NF == want) } END { exit !found }' "$p/status" 2>/dev/null; then
        echo "${p#/proc/}"
        return
      fi
    done
  }
  booted() { case $(in_ct systemctl is-system-running 2>/dev/null) in running | degraded) true ;; *) false ;; esac; }
  wait_for 180 booted || true
  state=$(in_ct systemctl is-system-running 2>/dev/null || true)
  echo "booted in $(secs "$started" "$(t)") s: $(in_ct uname -m), systemd $state"
  # Under qemu-user, units that load credentials (systemd-sysusers, systemd-tmpfiles-setup)
  # fail ("Failed to set up credentials: Invalid argument"): the system is "degraded" there.
  in_ct systemctl --failed --no-legend --plain --no-pager || true
  check "the $arch container boots systemd (is-system-running: $state)" booted
  check "the container has no network but its own loopback (/proc/net/dev: lo)" \
    bash -c "test \"\$(awk -F: 'NR > 2 { gsub(/ /, \"\", \$1); print \$1 }' /proc/$leader/net/dev)\" = lo"

  # Under qemu-user the service is a multi-threaded host process (qemu's own threads), and the
  # kernel lets only a single-threaded process enter a new user namespace: PrivateUsers= fails
  # ("Failed to set up user namespacing: Invalid argument", status 217/USER), and so does
  # PrivateIPC= (226/NAMESPACE, "Failed to set up IPC namespacing: Input/output error"). The
  # emulated run turns off these two only (docs/gateway.md, "What the containers cannot check").
  if [ "$arch" != "$host_arch" ]; then
    mkdir -p "$ctroot/etc/systemd/system/ship-gateway.service.d"
    cat >"$ctroot/etc/systemd/system/ship-gateway.service.d/qemu-user.conf" <<'DROPIN'
# package.sh boot, emulated architectures only: qemu-user cannot enter new user or IPC namespaces.
[Service]
PrivateUsers=no
PrivateIPC=no
DROPIN
    echo "--- the emulated run's drop-in (ship-gateway.service.d/qemu-user.conf)"
    cat "$ctroot/etc/systemd/system/ship-gateway.service.d/qemu-user.conf"
  fi

  # Every path of the file system before the install (for apt purge at the end).
  snapshot() {
    in_ct find / -xdev \( -path /proc -o -path /sys -o -path /dev -o -path /run -o -path /tmp \
      -o -path /var/tmp -o -path /mnt/ship-test -o -path /var/log/journal \) -prune -o -print | sort
  }
  snapshot >"$work/before"

  # A unit's journal (unit=NAME, default the service; since=@EPOCH to start there), and grep
  # in it: the journal is read whole first, so that a grep that stops early (-q, -m) cannot kill
  # journalctl with SIGPIPE (a failed pipeline under pipefail).
  journal() { in_ct journalctl -u "${unit:-ship-gateway}" -o cat --no-pager ${since:+--since "$since"}; }
  jgrep() { local text; text=$(journal); grep "$@" <<<"$text"; }
  prop() { in_ct systemctl show -p "$1" --value "${2:-ship-gateway}"; }

  # 4. apt install, offline.
  started=$(t)
  in_ct sh -c "cd /mnt/ship-test && apt install -y ./$debname" >"$work/apt.out" 2>&1 && status=0 || status=$?
  # (apt ends lines with \r\n and redraws its progress with \r: keep what was drawn last.)
  sed -i 's/\r$//; s/.*\r//' "$work/apt.out"
  echo "--- apt install -y ./$debname ($(secs "$started" "$(t)") s)"; grep -v '^WARNING: apt does not have' "$work/apt.out"
  check "apt install ./$debname succeeds offline (exit status $status)" test "$status" = 0
  ski=$(sed -n "s/^ship-gateway: this gateway's SKI is \([0-9a-f]\{40\}\)\$/\1/p" "$work/apt.out")
  check "the install prints the gateway's SKI ($ski)" test -n "$ski"
  listening_with() { jgrep -q "listening on $1 (SKI $ski,"; }
  wait_for 60 listening_with '\[::\]:4711' || true
  check "the service is active after the install (systemctl is-active ship-gateway)" \
    test "$(in_ct systemctl is-active ship-gateway)" = active
  check "the journal shows it listening with that SKI (journalctl -u ship-gateway)" listening_with '\[::\]:4711'
  check "the unit is enabled (systemctl is-enabled)" test "$(in_ct systemctl is-enabled ship-gateway)" = enabled
  main=$(prop MainPID)
  hmain=$(host_pid "$main")
  interfaces() { awk -F: 'NR > 2 { gsub(/ /, "", $1); printf "%s ", $1 }' "/proc/$1/net/dev"; }
  mdns_on_lo() { jgrep -q 'listening on .*mDNS on)' && test "$(interfaces "$hmain")" = "lo "; }
  check "mDNS is on, and the service's only interface is the container's loopback ($(interfaces "$hmain"))" mdns_on_lo
  check "it runs as the ship-gateway user" test "$(awk '/^Uid:/ { print $2 }' "/proc/$hmain/status")" = "$(in_ct id -u ship-gateway)"

  # 5. It reads its configuration: port = 4712 in /etc/ship-gateway/config.toml.
  in_ct sed -i 's/^# port = 4711$/port = 4712/' /etc/ship-gateway/config.toml || true
  in_ct systemctl restart ship-gateway || true
  wait_for 60 listening_with '\[::\]:4712' || true
  check "it reads /etc/ship-gateway/config.toml (port = 4712 there: listening on [::]:4712)" listening_with '\[::\]:4712'

  # 6. The sandbox at run time, seen from inside the service's own mount namespace (and its
  #    user namespace where PrivateUsers= gives it one), as its user: it may write its data dir
  #    and its private /tmp, nothing else.
  main=$(prop MainPID)
  hmain=$(host_pid "$main")
  uid=$(in_ct id -u ship-gateway)
  gid=$(in_ct id -g ship-gateway)
  userns=()
  [ "$(readlink "/proc/$hmain/ns/user")" = "$(readlink "/proc/$leader/ns/user")" ] || userns=(-U)
  # (In the service's user namespace setgroups() is denied, as PrivateUsers= sets it up: the
  # groups are left as they are there, i.e. unmapped.)
  groups=(--clear-groups)
  [ ${#userns[@]} = 0 ] || groups=(--keep-groups)
  as_service() {
    nsenter -t "$hmain" -m "${userns[@]}" -- \
      setpriv --reuid="$uid" --regid="$gid" "${groups[@]}" --inh-caps=-all "$@"
  }
  echo "--- writes from the service's namespaces ($(as_service id 2>&1); ${userns[*]:-no user namespace})"
  written=()
  for path in /etc/ship-gateway/probe /usr/local/probe /var/lib/probe /var/log/probe /root/probe /home/probe /var/cache/probe; do
    if out=$(as_service touch "$path" 2>&1); then
      echo "$path: written"; written+=("$path")
    else
      echo "$out"
      # Only the sandbox's answers count (not a failure of the probe itself).
      grep -qE 'Read-only file system|Permission denied' <<<"$out" || written+=("$path?")
    fi
  done
  check "the service cannot write outside its data dir: /etc, /usr, /var/lib, /var/log, /root, /home, /var/cache (${written[*]:-all refused})" \
    test ${#written[@]} = 0
  writes_data_dir() { as_service touch /var/lib/ship-gateway/probe && as_service rm /var/lib/ship-gateway/probe; }
  check "it can write its data dir /var/lib/ship-gateway" writes_data_dir
  as_service touch /tmp/ship-probe 2>/dev/null || true
  check "its /tmp is private (a file it writes there is not in the container's /tmp)" \
    test ! -e "$ctroot/tmp/ship-probe"
  echo "--- the unit's sandbox as systemd applied it (/proc/$hmain/status)"
  grep -E '^(NoNewPrivs|CapEff|CapBnd|Seccomp|Seccomp_filters):' "/proc/$hmain/status"
  filters() { awk '/^Seccomp_filters:/ { print $2 }' "/proc/$1/status"; }
  check "no capabilities and no new privileges (CapEff and CapBnd 0, NoNewPrivs 1)" \
    awk '/^Cap(Eff|Bnd):/ && $2 !~ /^0+$/ { bad = 1 } /^NoNewPrivs:/ { nnp = $2 } END { exit bad || nnp != 1 }' "/proc/$hmain/status"
  if [ "$arch" = "$host_arch" ]; then
    check "its system-call filters are in place ($(filters "$hmain") seccomp filters; the container's init has $(filters "$leader"))" \
      test "$(filters "$hmain")" -gt "$(filters "$leader")"
  else
    # systemd (at debug level): "SECCOMP features not detected in the kernel, skipping
    # SystemCallFilter=" and the same for every setting built on seccomp: qemu-user refuses
    # seccomp(2) for the emulated process.
    echo "under qemu-user systemd installs no seccomp filter: $(filters "$hmain") filters, the container's init has $(filters "$leader")"
  fi
  echo "--- systemd-analyze security ship-gateway (inside the container, the unit as loaded)"
  in_ct systemd-analyze security ship-gateway --no-pager >"$work/security" 2>&1 || true
  grep -v '^✓' "$work/security"
  exposure=$(sed -n 's/.*Overall exposure level for .*: \([0-9.]*\) .*/\1/p' "$work/security")
  check "the loaded unit's exposure is $exposure (at most $MAX_EXPOSURE)" \
    awk -v e="$exposure" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(e != "" && e + 0 <= m + 0) }'

  # 7. kill -9 of the main process: Restart=on-failure, RestartSec=5.
  old=$main
  started=$(t)
  in_ct sh -c "kill -9 $main" || true
  restarted() { main=$(prop MainPID); [ "$main" != 0 ] && [ "$main" != "$old" ] && test "$(in_ct systemctl is-active ship-gateway)" = active; }
  wait_for 60 restarted || true
  took=$(secs "$started" "$(t)")
  jgrep -E 'code=killed|Scheduled restart' | tail -2 || true
  check "kill -9: Restart=on-failure starts it again (after $took s; NRestarts=$(prop NRestarts), new PID $main)" \
    bash -c "test '$(prop NRestarts)' = 1 && awk -v s=$took 'BEGIN { exit !(s >= 5 && s < 30) }'"
  listenings() { test "$(jgrep -c "listening on \[::\]:4712 (SKI $ski,")" -ge "$1"; }
  wait_for 60 listenings 2 || true
  check "after the restart it listens again with the same SKI" listenings 2

  # 8. A second gateway in the same container (a transient unit, as root, its own data dir,
  #    the protocol engine's debug lines on): the service pairs it (as its user, through the
  #    control socket), the peer pairs the service with its address and dials it; data flows
  #    both ways.
  peer_ski=$(in_ct ship-gateway --data-dir /root/peer ski)
  in_ct systemd-run --quiet --unit=ship-peer --setenv=RUST_LOG=ship_proto::protocol::connection=debug \
    /usr/bin/ship-gateway --data-dir /root/peer run --bind 127.0.0.1 --port 4713 --no-mdns --no-prompt || true
  peer_up() { unit=ship-peer jgrep -q 'listening on'; }
  wait_for 60 peer_up || true
  in_ct runuser -u ship-gateway -- ship-gateway pair "$peer_ski" || true
  in_ct ship-gateway --data-dir /root/peer pair "$ski" --address 127.0.0.1:4712 || true
  connected() { unit=ship-gateway jgrep -q "^.* $peer_ski connected" && unit=ship-peer jgrep -q "^.* $ski connected"; }
  wait_for 90 connected || true
  check "a second gateway ($peer_ski) and the service pair and connect (both journals: connected)" connected
  in_ct runuser -u ship-gateway -- ship-gateway send "$peer_ski" '{"from":"the service"}' || true
  in_ct ship-gateway --data-dir /root/peer send "$ski" '{"from":"the peer"}' || true
  got() { unit=$1 jgrep -q "received $2 bytes from $3"; }
  wait_for 30 got ship-peer 22 "$ski" || true
  wait_for 30 got ship-gateway 19 "$peer_ski" || true
  check "data flows from the service to the peer (ship-gateway send; the peer received 22 bytes)" got ship-peer 22 "$ski"
  check "data flows from the peer to the service (the service's journal: received 19 bytes)" got ship-gateway 19 "$peer_ski"

  # 9. systemctl stop: SIGTERM, the SHIP connection closed (connectionClose), exit in time.
  started=$(t)
  in_ct systemctl stop ship-gateway || true
  took=$(secs "$started" "$(t)")
  journal | tail -3
  unit=ship-peer jgrep "$ski disconnected" | tail -1 || true
  stopped_cleanly() { test "$(prop Result)" = success && test "$(prop ExecMainStatus)" = 0 && awk -v s="$took" 'BEGIN { exit !(s < 15) }'; }
  check "systemctl stop returns in $took s (TimeoutStopSec=15), exit status 0 (Result=$(prop Result), status $(prop ExecMainStatus))" \
    stopped_cleanly
  closed_in_time() { local last; last=$(jgrep -E 'stopped after|shutting down' | tail -1); grep -qE '^.*stopped after [0-9]+ ms$' <<<"$last"; }
  check "it closed the connection in time (its last line: 'stopped after N ms', nothing late)" closed_in_time
  peer_saw_close() {
    unit=ship-peer jgrep -q 'connection ends cause=RemoteClosed' &&
      unit=ship-peer jgrep -q "$ski disconnected: closed by the peer"
  }
  check "the peer got the SHIP close (connection ends cause=RemoteClosed; '$ski disconnected: closed by the peer')" \
    peer_saw_close

  # 10. A failure that persists (an unknown key in the configuration): five starts within
  #     StartLimitIntervalSec=120, then the start limit stops it with a clear status.
  in_ct sh -c 'echo "no_such_key = 1" >>/etc/ship-gateway/config.toml' || true
  in_ct systemctl reset-failed ship-gateway 2>/dev/null || true
  started=$(t)
  in_ct systemctl start ship-gateway || true
  # (systemd 252 logs the limit and keeps the last failure's Result=exit-code.)
  limited() { test "$(prop ActiveState)" = failed && since=@${started%.*} jgrep -q 'Start request repeated too quickly'; }
  wait_for 120 limited || true
  took=$(secs "$started" "$(t)")
  in_ct systemctl status ship-gateway --no-pager -n 10 >"$work/status" 2>&1 || true
  echo "--- systemctl status ship-gateway ($took s after the start)"; cat "$work/status"
  tries=$(since=@${started%.*} jgrep -c '^ship-gateway: .*no_such_key' || true)
  limited_after_5() { limited && test "$tries" = 5; }
  check "a bad configuration: $tries failed starts, then the start limit stops it within $took s (failed, 'Start request repeated too quickly')" \
    limited_after_5
  # (systemctl status shows the last invocation's lines: the start that was refused, not the
  # error of the tries before it, which journalctl -u shows.)
  check "systemctl status says it hit the start limit ('Start request repeated too quickly')" \
    grep -q 'Start request repeated too quickly' "$work/status"
  since=@${started%.*} jgrep -m1 '^ship-gateway: ' || true
  check "journalctl -u ship-gateway shows each try's one-line error (ship-gateway: config file ... no_such_key)" \
    test "$tries" -ge 1
  in_ct sed -i '/^no_such_key = 1$/d' /etc/ship-gateway/config.toml || true
  in_ct systemctl reset-failed ship-gateway || true
  in_ct systemctl start ship-gateway || true
  wait_for 60 listenings 3 || true
  check "fixed, reset-failed and started: active again" test "$(in_ct systemctl is-active ship-gateway)" = active

  # 11. apt purge: nothing is left but what docs/gateway.md says (the system user).
  in_ct systemctl stop ship-peer || true
  in_ct rm -rf /root/peer || true
  in_ct apt purge -y ship-gateway >"$work/purge.out" 2>&1 && status=0 || status=$?
  echo "--- apt purge -y ship-gateway"; grep -v '^WARNING: apt does not have' "$work/purge.out"
  check "apt purge ship-gateway succeeds (exit status $status)" test "$status" = 0
  snapshot >"$work/after"
  # What may differ: dpkg's and apt's own records and logs, and the files that hold the kept user.
  comm -13 "$work/before" "$work/after" |
    grep -vE '^/var/(lib/dpkg|lib/apt|log|cache/(apt|debconf|ldconfig))(/|$)|^/etc/(passwd|group|shadow|gshadow|subuid|subgid)-?$|^/etc/ld\.so\.cache$' \
    >"$work/left" || true
  echo "--- paths that exist after apt purge and did not before ($(wc -l <"$work/left"))"; cat "$work/left"
  check "apt purge leaves no file of the package (no new path outside dpkg/apt's records)" test ! -s "$work/left"
  check "the data dir /var/lib/ship-gateway and /etc/ship-gateway are gone" \
    test ! -e "$ctroot/var/lib/ship-gateway" -a ! -e "$ctroot/etc/ship-gateway"
  unit_gone() { ! in_ct systemctl cat ship-gateway >/dev/null 2>&1 && test -z "$(find "$ctroot/etc/systemd" -name 'ship-gateway.service')"; }
  check "the unit is gone (systemctl cat ship-gateway fails) and nothing enables it" unit_gone
  check "the ship-gateway system user is kept, as documented" grep -q '^ship-gateway:' "$ctroot/etc/passwd"

  echo "--- journalctl -u ship-gateway (the whole run)"
  journal
  echo "--- journalctl -u ship-peer (the second gateway)"
  unit=ship-peer journal
  # 12. Power off.
  started=$(t)
  stop_container
  check "the container powers off (systemctl poweroff, $(secs "$started" "$(t)") s)" test -z "$leader"
  ;;
*)
  echo "usage: package.sh check|start|postinst|boot DEB" >&2
  exit 2
  ;;
esac
exit "$failed"
