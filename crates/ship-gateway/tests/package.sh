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
#                                     it creates the user and the data dir and prints the SKI
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

mode=${1:?usage: package.sh check|start|postinst DEB}
deb=${2:?usage: package.sh check|start|postinst DEB}
work=$(mktemp -d)
pid=
cleanup() {
  if [ -n "$pid" ]; then kill -9 "$pid" 2>/dev/null || true; fi
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
    # A second configure (an upgrade) keeps the identity.
    sh "$work/control/postinst" configure 0.1.0-1 >"$work/again.out" 2>&1 || true
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
*)
  echo "usage: package.sh check|start|postinst DEB" >&2
  exit 2
  ;;
esac
exit "$failed"
