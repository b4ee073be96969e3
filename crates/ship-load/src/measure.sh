#!/usr/bin/env bash
# Runs one ship-load scenario against a fresh `ship-load serve` target, REPEAT times, and prints
# each JSON result (one per line) to stdout. Loopback only.
#
#   crates/ship-load/src/measure.sh "SERVE ARGS" "RUN ARGS" [REPEAT]
#
# e.g. crates/ship-load/src/measure.sh "--echo --greet" "--count 200 --concurrency 1 --expect-greeting" 5
# The target is pre-paired with the first N identities of the cache (N = --count in RUN ARGS).
set -euo pipefail
serve_args=$1
run_args=$2
repeat=${3:-3}
bin=${SHIP_LOAD:-target/release/ship-load}
ids=${SHIP_LOAD_IDS:-target/ship-load-identities}
count=$(sed -n 's/.*--count \([0-9]*\).*/\1/p' <<<"$run_args")
"$bin" identities --dir "$ids" --count "${count:-100}" >/dev/null
for _ in $(seq "$repeat"); do
  out=$(mktemp)
  # shellcheck disable=SC2086
  "$bin" serve --skis "$ids/skis.txt" $serve_args >"$out" 2>/dev/null &
  serve_pid=$!
  for _ in $(seq 100); do [ -s "$out" ] && break; sleep 0.1; done
  target=$(head -1 "$out" | sed 's/.*"target":"\([^"]*\)".*/\1/')
  # shellcheck disable=SC2086
  "$bin" run --target "$target" --identities "$ids" --target-pid "$serve_pid" $run_args |
    tr -d '\n ' ; echo
  kill -INT "$serve_pid"; wait "$serve_pid" || true
  rm -f "$out"
done
