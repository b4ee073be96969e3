#!/usr/bin/env python3
"""Measures `ship-gateway` against `ship-load serve` in alternating pairs (loopback only).

    crates/ship-load/src/measure-gateway.py --pairings N [--handshakes H] [--concurrency C] [--pairs P]

For each pair it starts, with N pairings:
  * a `ship-gateway run` (pairings.json written by `ship-load pairings`: SHIP ID known,
    last_seen a day old, as after a restart), and
  * a `ship-load serve` pre-paired in memory with the same N SKIs (the library's speed),
then aims `ship-load run --count H --concurrency C` at it (H defaults to min(N, 3000)), sends
SIGINT right after the burst (with --held: while all its connections are still open, gateway
only), and prints one JSON line per target:
  startup_s         process start -> listening (the gateway's `listening` event / serve's line)
  cpu_us_per_hs     the target's CPU per handshake during the burst (ship-load run's figure)
  shutdown_s        SIGINT -> process exit
  closed_in_time    the gateway's `stopped` event: every connection closed within the deadline
  written_per_hs    bytes the target caused to be written to storage (/proc/PID/io write_bytes,
                    start -> exit, so including the last flush at shutdown) / handshakes
and finally the medians, and the ratio of the two CPU medians. Concurrency defaults to 32. Every
load client connects from 127.0.0.1, so both targets raise the per-address handshake cap to
their `--max-handshakes` (512): `serve` always does, the gateway with
`--max-handshakes-per-address`.
"""

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

LOAD = os.environ.get("SHIP_LOAD", "target/release/ship-load")
GATEWAY = os.environ.get("SHIP_GATEWAY", "target/release/ship-gateway")
IDS = os.environ.get("SHIP_LOAD_IDS", "target/ship-load-identities")


def write_bytes(pid):
    try:
        with open(f"/proc/{pid}/io") as f:
            for line in f:
                if line.startswith("write_bytes:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class Target:
    """A target process whose stdout lines are collected by a thread."""

    def __init__(self, argv, ready):
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        self.lines = []
        self.ready_event = threading.Event()
        self.ready_line = None
        self.ready_at = None
        self.ready = ready
        threading.Thread(target=self._read, daemon=True).start()
        if not self.ready_event.wait(60):
            self.proc.kill()
            raise SystemExit(f"{argv[0]} did not get ready")
        self.io_start = write_bytes(self.proc.pid) or 0

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line)
            if self.ready_line is None and self.ready(line):
                self.ready_at = time.monotonic()
                self.ready_line = json.loads(line)
                self.ready_event.set()

    def stop(self):
        """SIGINT now; returns (seconds to exit, bytes written since start)."""
        pid = self.proc.pid
        sent = time.monotonic()
        os.kill(pid, signal.SIGINT)
        # Wait for the exit without reaping, so the zombie's I/O counters can still be read.
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
        took = time.monotonic() - sent
        written = write_bytes(pid)
        self.proc.wait()
        return took, (written or 0) - self.io_start


def load(*args):
    out = subprocess.run([LOAD, *args], check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def burst(target_spec, pid, handshakes, concurrency):
    return load(
        "run", "--target", target_spec, "--identities", IDS, "--count", str(handshakes),
        "--concurrency", str(concurrency), "--target-pid", str(pid),
    )


def run_gateway(args, skis):
    data = tempfile.mkdtemp(prefix="ship-gw-measure-", dir=args.work)
    try:
        load("pairings", "--skis", skis, "--count", str(args.pairings),
             "--out", os.path.join(data, "pairings.json"))
        subprocess.run([GATEWAY, "--data-dir", data, "ski"], check=True,
                       capture_output=True)
        gateway = Target(
            [GATEWAY, "--data-dir", data, "--json", "run", "--bind", "127.0.0.1",
             "--port", "0", "--no-mdns", "--no-prompt", "--max-connections", "20000",
             "--max-handshakes", "512", "--max-handshakes-per-address", "512"],
            lambda line: '"event":"listening"' in line,
        )
        ready = gateway.ready_line
        spec = f"{ready['ski']}@{ready['address']}"
        if args.held:
            # The burst's connections stay open; SIGINT as soon as the last one is connected.
            client = subprocess.Popen(
                [LOAD, "run", "--target", spec, "--identities", IDS, "--count",
                 str(args.handshakes), "--concurrency", str(args.concurrency),
                 "--target-pid", str(gateway.proc.pid), "--hold-secs", "60"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 120
            while (sum('"event":"connected"' in l for l in list(gateway.lines)) < args.handshakes
                   and time.monotonic() < deadline):
                time.sleep(0.02)
            result = {"completed": sum('"event":"connected"' in l for l in list(gateway.lines))}
            shutdown, written = gateway.stop()
            client.kill()
            client.wait()
        else:
            result = burst(spec, gateway.proc.pid, args.handshakes, args.concurrency)
            shutdown, written = gateway.stop()
        stopped = [json.loads(l) for l in gateway.lines if '"event":"stopped"' in l]
        return {
            "target": "gateway",
            "pairings": args.pairings,
            "startup_s": round(gateway.ready_at - gateway.started, 4),
            "completed": result.get("completed"),
            "cpu_us_per_hs": result.get("target_cpu_us_per_handshake"),
            "shutdown_s": round(shutdown, 3),
            "closed_in_time": stopped[0].get("connections_closed_in_time") if stopped else None,
            "written_per_hs": round(written / max(1, args.handshakes)),
            "failures": result.get("failures"),
        }
    finally:
        shutil.rmtree(data, ignore_errors=True)


def run_serve(args, skis):
    serve = Target([LOAD, "serve", "--skis", skis], lambda line: '"target"' in line)
    result = burst(serve.ready_line["target"], serve.proc.pid, args.handshakes, args.concurrency)
    shutdown, written = serve.stop()
    return {
        "target": "serve",
        "pairings": args.pairings,
        "startup_s": round(serve.ready_at - serve.started, 4),
        "completed": result.get("completed"),
        "cpu_us_per_hs": result.get("target_cpu_us_per_handshake"),
        "shutdown_s": round(shutdown, 3),
        "written_per_hs": round(written / max(1, args.handshakes)),
        "failures": result.get("failures"),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairings", type=int, required=True)
    parser.add_argument("--handshakes", type=int)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--work", default="target", help="where the data dirs go")
    parser.add_argument("--held", action="store_true",
                        help="gateway only: keep the burst's connections open and send SIGINT "
                             "once all are connected (shutdown closes every one)")
    args = parser.parse_args()
    if args.handshakes is None:
        args.handshakes = min(args.pairings, 3000)
    if args.handshakes > args.pairings:
        raise SystemExit("--handshakes must not exceed --pairings (one paired client each)")
    subprocess.run([LOAD, "identities", "--dir", IDS, "--count", str(args.pairings)],
                   check=True, capture_output=True)
    skis = os.path.join(args.work, f"measure-skis-{args.pairings}.txt")
    with open(os.path.join(IDS, "skis.txt")) as f, open(skis, "w") as out:
        out.writelines(f.readlines()[: args.pairings])
    rows = []
    for _ in range(args.pairs):
        for run in (run_gateway,) if args.held else (run_gateway, run_serve):
            row = run(args, skis)
            print(json.dumps(row), flush=True)
            rows.append(row)
    summary = {"pairings": args.pairings, "handshakes": args.handshakes,
               "concurrency": args.concurrency, "pairs": args.pairs}
    for name in ("gateway", "serve"):
        mine = [r for r in rows if r["target"] == name]
        for key in ("startup_s", "cpu_us_per_hs", "shutdown_s", "written_per_hs"):
            values = [r[key] for r in mine if r[key] is not None]
            if values:
                summary[f"{name}_{key}_median"] = statistics.median(values)
    g, s = summary.get("gateway_cpu_us_per_hs_median"), summary.get("serve_cpu_us_per_hs_median")
    if g and s:
        summary["cpu_ratio_gateway_to_serve"] = round(g / s, 2)
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    sys.exit(main())
