"""Trunk call throughput of the real switch: SIPp extension -> mss -> SIPp carrier.

Starts ``twistd -n mss`` from this checkout on a free loopback port (UDP, media off, logging at
"warn") with extension 1001, a trunk ``carrier`` (logical domain gd.ctcims.cn, outbound proxy
127.0.0.2:PORT, no registration) and the outbound route ``0`` -> carrier (strip 1, prepend
+86), written to the store before the switch starts. The carrier is SIPp on 127.0.0.2:

- default: ``tests/sipp/carrier_answer.xml`` (180, 200 with SDP, ACK, BYE);
- ``--ims``: ``tests/sipp/carrier_uas.xml`` (407 answered with the full-URI auth ID, reliable
  180 PRACKed, 200, ACK, BYE): the IMS case, two more transactions per call.

The extension is SIPp with ``tests/sipp/uac_call.xml`` dialling 0755...: INVITE -> 407 ->
authorised INVITE -> 180 -> 200 -> ACK -> BYE -> 200. Every call also takes and releases the
trunk's outbound count. Steps of ``--seconds`` at the ``--rates`` offered; a step passes when
under 1% of its calls fail. Printed per step: offered rate, calls/s achieved, failures, the
switch's CPU time per call. Bounded: SIPp runs with ``-timeout``, the switch under
``timeout -s KILL``.

    PYTHONPATH=. python bench/trunk_calls.py [--rates 100,200,300,500] [--seconds 8] [--ims]
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "bench"))

from register import (_COUNT, cpu_seconds, report_step, start_switch,    # noqa: E402
                      stop_all, switch_pid)

from tests.e2e.harness import free_port, write_config                  # noqa: E402

SIPP_DIR = os.path.join(ROOT, "tests", "sipp")
REALM = "bench.test"
CALLER, CALLER_PW = "1001", "bench-pw-1001"
DOMAIN, ACCOUNT = "gd.ctcims.cn", "+8675512345678"
AUTH_ID = ACCOUNT + "@" + DOMAIN
CARRIER_HOST = "127.0.0.2"


def provision(directory: str, carrier_port: int, max_out: int | None) -> None:
    from mss.store.sqlite import SQLiteStore
    from mss.store.records import Trunk
    store = SQLiteStore(os.path.join(directory, "mss.sqlite"))
    try:
        store.add_extension(CALLER, CALLER_PW, REALM)
        store.put_trunk(Trunk(name="carrier", domain=DOMAIN, account=ACCOUNT, auth_id=AUTH_ID,
                              password="carrier-pw", proxy=f"{CARRIER_HOST}:{carrier_port}",
                              register=False, allow=(CARRIER_HOST,), max_out=max_out))
        store.add_route("0", ["carrier"], strip=1, prepend="+86")
    finally:
        store.close()


def start_carrier(directory: str, port: int, carrier_port: int, lifetime: int,
                  ims: bool) -> subprocess.Popen:
    scenario = "carrier_uas.xml" if ims else "carrier_answer.xml"
    log = open(os.path.join(directory, "carrier.log"), "wb")
    return subprocess.Popen(
        ["sipp", "-sf", os.path.join(SIPP_DIR, scenario), f"127.0.0.1:{port}",
         "-i", CARRIER_HOST, "-p", str(carrier_port), "-t", "u1", "-timeout", f"{lifetime}s",
         "-nostdin", "-max_socket", "1000", "-trace_err",
         *(["-set", "authid", AUTH_ID] if ims else [])],
        cwd=directory, stdout=log, stderr=subprocess.STDOUT)


def caller(directory: str, port: int, rate: int, calls: int, timeout: float) -> dict:
    argv = ["sipp", "-sf", os.path.join(SIPP_DIR, "uac_call.xml"), f"127.0.0.1:{port}",
            "-i", "127.0.0.1", "-p", str(free_port()), "-t", "u1", "-s", "075512340000",
            "-set", "caller", CALLER, "-set", "hold", "0", "-au", CALLER, "-ap", CALLER_PW,
            "-r", str(rate), "-rp", "1000", "-m", str(calls), "-l", str(max(1000, rate * 4)),
            "-timeout", f"{int(timeout)}s", "-nostdin", "-max_socket", "1000"]
    done = subprocess.run(argv, cwd=directory, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=timeout + 20)
    counts = dict((k.decode(), int(v)) for k, v in _COUNT.findall(done.stdout))
    return {"ok": counts.get("Successful call", 0), "failed": counts.get("Failed call", 0)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="100,200,300,500")
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each step")
    parser.add_argument("--ims", action="store_true",
                        help="IMS carrier: 407 digest and a reliable 180 (PRACK) per call")
    parser.add_argument("--max-out", type=int, default=None,
                        help="the trunk's outbound limit (default: unlimited)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)
    if shutil.which("sipp") is None:
        sys.exit("sipp is not installed (apt-get install sip-tester)")
    rates = [int(r) for r in args.rates.split(",")]
    directory = tempfile.mkdtemp(prefix="mss-bench-trunk-")
    port, carrier_port = free_port(), free_port(CARRIER_HOST)
    write_config(directory, {
        "sip": {"domain": REALM, "bind": "127.0.0.1", "port": port, "transports": ["udp"]},
        "log": {"level": "warn"},
        "store": {"path": "mss.sqlite", "poll_interval": 1.0},
        "security": {"allow": ["127.0.0.1/32"]},
        "calls": {"max_setup": 100000, "no_answer_timeout": 30, "max_duration": 0},
        "media": {"mode": "off"},
    })
    provision(directory, carrier_port, args.max_out)
    lifetime = int(len(rates) * (args.seconds * 2 + 30) + 60)
    proc = start_switch(directory, port, lifetime)
    pid = switch_pid(proc)
    carrier = start_carrier(directory, port, carrier_port, lifetime, args.ims)
    best = 0
    try:
        caller(directory, port, 50, 50, 30)                           # warm-up
        print(f"carrier: {'IMS (407 + PRACK)' if args.ims else 'plain answer'}")
        print(f"{'offered/s':>10} {'calls':>7} {'ok':>7} {'failed':>7} {'lost':>6} "
              f"{'achieved/s':>11} {'switch CPU/call':>16}")
        for rate in rates:
            calls = int(rate * args.seconds)
            cpu0, t0 = cpu_seconds(pid), time.monotonic()
            step = caller(directory, port, rate, calls, args.seconds * 2 + 20)
            elapsed = time.monotonic() - t0
            cpu = cpu_seconds(pid) - cpu0
            if not report_step(rate, calls, step["ok"], step["failed"], cpu, elapsed):
                break
            best = max(best, rate)
            time.sleep(2.0)                      # let the transactions of the step drain
    finally:
        stop_all([(carrier, carrier.pid), (proc, pid)], directory, args.keep)
    print(f"best: {best} trunk calls/s sustained with <1% failed calls (extension -> trunk)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
