#!/usr/bin/env python3
"""Measures what `ship-gateway` costs as a daemon on a small device (loopback only).

    crates/ship-load/src/measure-device.py [--gateway PATH] [--starts N] [--idle-secs S]

The gateway may be a binary of another architecture: with binfmt_misc and qemu-user-static it
runs emulated (set QEMU_LD_PREFIX, e.g. /usr/aarch64-linux-gnu), and every CPU and memory figure
is then the emulator's. `ship-load` (this machine's architecture) plays the devices. Prints one
JSON line per measurement:

  start       process start -> the `listening` event, first start (creates the identity) and
              N later starts on the same data dir; idle RSS (VmRSS) 3 s after `listening`
  devices     RSS with 10 and with 100 devices connected and held (`ship-load run --hold-secs`),
              the gateway's CPU per handshake (its /proc/PID/stat in 10 ms ticks, ship-load's
              figure: meaningful with 100 handshakes, coarse with 10)
  writes      bytes the gateway wrote to storage (/proc/PID/io write_bytes) with 10 paired
              devices: the start, a reconnect round due to write `last_seen` (as every hourly
              reconnect is: `last_seen` is written at most once per 10 minutes per device, and
              these pairings' `last_seen` is a day old), S seconds idle with all 10 connected,
              their close, and an immediate second round (within 10 minutes: nothing due)
  per_day     the extrapolation: 24 due rounds (connect + close) + 86,400 s at the idle rate;
              the same for the bytes of event lines on stdout (what the service hands to the
              journal, which writes them with its own overhead)
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

LOAD = os.environ.get("SHIP_LOAD", "target/release/ship-load")
IDS = os.environ.get("SHIP_LOAD_IDS", "target/ship-load-identities")


def proc_field(pid, name, key):
    try:
        with open(f"/proc/{pid}/{name}") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class Gateway:
    def __init__(self, binary, data, extra=()):
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [binary, "--data-dir", data, "--json", "run", "--bind", "127.0.0.1", "--port", "0",
             "--no-mdns", "--no-prompt", *extra],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.lines = []
        self.ready = threading.Event()
        self.listening = None
        threading.Thread(target=self._read, daemon=True).start()
        if not self.ready.wait(120):
            self.proc.kill()
            raise SystemExit("the gateway did not get ready")

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line)
            if self.listening is None and '"event":"listening"' in line:
                self.ready_at = time.monotonic()
                self.listening = json.loads(line)
                self.ready.set()

    def startup_ms(self):
        return round((self.ready_at - self.started) * 1000, 1)

    def target(self):
        return f"{self.listening['ski']}@{self.listening['address']}"

    def written(self):
        return proc_field(self.proc.pid, "io", "write_bytes")

    def rss_kib(self):
        return proc_field(self.proc.pid, "status", "VmRSS")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        os.waitid(os.P_PID, self.proc.pid, os.WEXITED | os.WNOWAIT)
        written = self.written()
        self.proc.wait()
        return written


def load(*args):
    out = subprocess.run([LOAD, *args], check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def devices(gw, count, hold):
    return load("run", "--target", gw.target(), "--identities", IDS, "--count", str(count),
                "--concurrency", "4", "--hold-secs", str(hold), "--target-pid", str(gw.proc.pid))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gateway", default="target/release/ship-gateway")
    parser.add_argument("--starts", type=int, default=5)
    parser.add_argument("--idle-secs", type=int, default=120)
    parser.add_argument("--work", default="target")
    args = parser.parse_args()
    subprocess.run([LOAD, "identities", "--dir", IDS, "--count", "100"], check=True,
                   capture_output=True)
    # (`ship-load run --count N` rewrites skis.txt to its N identities: keep a copy of the 100.)
    skis = os.path.join(args.work, "measure-device-skis.txt")
    shutil.copyfile(os.path.join(IDS, "skis.txt"), skis)
    limits = ["--max-connections", "200", "--max-handshakes-per-address", "32"]

    # Start-up and idle RSS.
    data = tempfile.mkdtemp(prefix="ship-device-", dir=args.work)
    try:
        rows = []
        for i in range(args.starts + 1):
            gw = Gateway(args.gateway, data)
            time.sleep(3)
            rows.append({"startup_ms": gw.startup_ms(), "idle_rss_kib": gw.rss_kib()})
            gw.stop()
        later = sorted(r["startup_ms"] for r in rows[1:])
        rss = sorted(r["idle_rss_kib"] for r in rows)
        print(json.dumps({"measure": "start", "first_start_ms": rows[0]["startup_ms"],
                          "later_starts_ms": later, "median_ms": later[len(later) // 2],
                          "idle_rss_kib": rss}), flush=True)
    finally:
        shutil.rmtree(data, ignore_errors=True)

    # RSS with 10 and 100 devices held, CPU per handshake.
    for count in (10, 100):
        data = tempfile.mkdtemp(prefix="ship-device-", dir=args.work)
        try:
            load("pairings", "--skis", skis, "--count", str(count),
                 "--out", os.path.join(data, "pairings.json"))
            gw = Gateway(args.gateway, data, limits)
            time.sleep(3)
            idle = gw.rss_kib()
            result = devices(gw, count, 10)
            gw.stop()
            held = result.get("held") or {}
            print(json.dumps({
                "measure": "devices", "devices": count, "completed": result.get("completed"),
                "idle_rss_kib": idle, "held_rss_kib": held.get("target_rss_held_kib"),
                "per_connection_bytes": held.get("target_rss_per_connection_bytes"),
                "cpu_us_per_handshake": result.get("target_cpu_us_per_handshake"),
                "failures": result.get("failures")}), flush=True)
        finally:
            shutil.rmtree(data, ignore_errors=True)

    # Bytes written with 10 paired devices.
    data = tempfile.mkdtemp(prefix="ship-device-", dir=args.work)
    try:
        load("pairings", "--skis", skis, "--count", "10",
             "--out", os.path.join(data, "pairings.json"))
        gw = Gateway(args.gateway, data, limits)
        time.sleep(3)
        out = lambda: sum(len(line) for line in list(gw.lines))
        marks = {"start": gw.written()}
        printed = {"start": out()}
        # Round 1 (due): connect, let the coalesced write happen, idle, close.
        client = subprocess.Popen(
            [LOAD, "run", "--target", gw.target(), "--identities", IDS, "--count", "10",
             "--concurrency", "4", "--hold-secs", str(args.idle_secs + 10)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(10)
        marks["round_connected"] = gw.written()
        printed["round_connected"] = out()
        time.sleep(args.idle_secs)
        marks["idle"] = gw.written()
        printed["idle"] = out()
        client.wait()
        time.sleep(3)
        marks["round_closed"] = gw.written()
        printed["round_closed"] = out()
        # Round 2, right away: nothing due.
        devices(gw, 10, 5)
        time.sleep(3)
        marks["second_round"] = gw.written()
        printed["second_round"] = out()
        marks["exit"] = gw.stop()
        printed["exit"] = out()

        def steps(cumulative):
            result, previous = {}, 0
            for name, value in cumulative.items():
                result[name] = value - previous
                previous = value
            return result

        written, lines = steps(marks), steps(printed)
        print(json.dumps({"measure": "writes", "idle_secs": args.idle_secs,
                          "written": written, "stdout_bytes": lines}), flush=True)
        due_round = written["round_connected"] + written["round_closed"]
        idle_rate = written["idle"] / args.idle_secs
        per_day = 24 * due_round + 86400 * idle_rate
        # What the service hands to the journal (its stdout, --json here; the human lines are
        # shorter): a round's lines, 24 times, plus the idle rate.
        journal_round = lines["round_connected"] + lines["round_closed"]
        journal_per_day = 24 * journal_round + 86400 * lines["idle"] / args.idle_secs
        print(json.dumps({"measure": "per_day", "due_round_bytes": due_round,
                          "idle_bytes_per_s": round(idle_rate, 2),
                          "bytes_per_day": round(per_day),
                          "stdout_bytes_per_round": journal_round,
                          "stdout_bytes_per_day": round(journal_per_day)}), flush=True)
    finally:
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
