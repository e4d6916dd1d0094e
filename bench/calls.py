"""Call throughput and memory per call of the real switch: SIPp caller -> mss -> SIPp callee.

Starts ``twistd -n mss`` from this checkout on a free loopback port (UDP, media off, logging at
"warn") with two extensions: 1001 calls, 1002 answers. 1002's device is a SIPp UAS
(``tests/sipp/uas_answer.xml``: 180, 200 with SDP, ACK, BYE) whose registration is written to
the store before the switch starts. The caller is SIPp with ``tests/sipp/uac_call.xml``: each
call is INVITE -> 407 -> authorised INVITE (real digest) -> 180 -> 200 -> ACK -> BYE -> 200,
i.e. two INVITE transactions, a B leg, and a BYE on each leg.

1. Memory: ``--held`` calls (default 2,000) are set up at ``--held-rate`` per second and held
   for ``--hold`` seconds; the switch's RSS is read from /proc before (after a warm-up) and
   once every call has been set up; the difference over the number of calls is the memory
   per established call, first with its setup transactions still in their 64*T1 wait states,
   then (with a hold over 40 s) 35 s later, when only the calls remain. RSS rarely shrinks,
   so the heap of the calls alone is also measured in-process with tracemalloc (the real
   core and call manager over a fake network, ``heap_per_call``).
2. Throughput: steps of ``--seconds`` each at the ``--rates`` offered; a step passes when
   under 1% of its calls fail (SIPp's Failed call count plus calls never completed). Printed
   per step: offered rate, calls/s achieved, failures, and the switch's CPU time per call
   (user+system from /proc), which tells whether the switch or SIPp was the limit.

Everything is bounded: SIPp runs with ``-timeout``, the switch under ``timeout -s KILL``.

    PYTHONPATH=. python bench/calls.py [--rates 100,200,300,500,700,1000] [--seconds 10]
        [--held 2000] [--hold 45] [--profile FILE]

Target (docs: bench/README.md): 500 calls/s on one core with under 1% failures.
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
CALLEE = "1002"


def provision(directory: str, uas_port: int) -> None:
    from mss.store.interface import Binding
    from mss.store.sqlite import SQLiteStore
    store = SQLiteStore(os.path.join(directory, "mss.sqlite"))
    try:
        store.add_extension(CALLER, CALLER_PW, REALM)
        store.add_extension(CALLEE, "bench-pw-1002", REALM)
        now = time.time()
        contact = f"sip:{CALLEE}@127.0.0.1:{uas_port};transport=UDP"
        store.put_binding(Binding(aor=CALLEE, key=f"<{contact}>", contact=contact,
                                  expires_at=now + 3600, call_id="bench-registration", cseq=1,
                                  transport="udp", source_host="127.0.0.1", source_port=uas_port,
                                  registered_at=now, user_agent="SIPp bench"))
    finally:
        store.close()


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def start_uas(directory: str, port: int, uas_port: int, lifetime: int) -> subprocess.Popen:
    log = open(os.path.join(directory, "uas.log"), "wb")
    return subprocess.Popen(
        ["sipp", "-sf", os.path.join(SIPP_DIR, "uas_answer.xml"), f"127.0.0.1:{port}",
         "-i", "127.0.0.1", "-p", str(uas_port), "-t", "u1", "-timeout", f"{lifetime}s",
         "-nostdin", "-max_socket", "1000", "-trace_err"],
        cwd=directory, stdout=log, stderr=subprocess.STDOUT)


def caller(directory: str, port: int, rate: int, calls: int, hold_ms: int, limit: int,
           timeout: float, wait: bool = True):
    argv = ["sipp", "-sf", os.path.join(SIPP_DIR, "uac_call.xml"), f"127.0.0.1:{port}",
            "-i", "127.0.0.1", "-p", str(free_port()), "-t", "u1", "-s", CALLEE,
            "-set", "caller", CALLER, "-set", "hold", str(hold_ms), "-au", CALLER,
            "-ap", CALLER_PW, "-r", str(rate), "-rp", "1000", "-m", str(calls),
            "-l", str(limit), "-timeout", f"{int(timeout)}s", "-nostdin", "-max_socket", "1000",
            "-trace_err"]
    proc = subprocess.Popen(argv, cwd=directory, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if not wait:
        return proc
    try:
        out, _ = proc.communicate(timeout=timeout + 20)
    except subprocess.TimeoutExpired:          # SIPp overran its own -timeout: give up the step
        proc.kill()
        out, _ = proc.communicate()
        return {"ok": 0, "failed": calls, "code": -9}
    return _counts(out, proc.returncode)


def _counts(out: bytes, code: int) -> dict:
    counts = dict((k.decode(), int(v)) for k, v in _COUNT.findall(out))
    return {"ok": counts.get("Successful call", 0), "failed": counts.get("Failed call", 0),
            "code": code}


def memory_test(directory, port, pid, held, rate, hold) -> None:
    caller(directory, port, 50, 50, 0, 50, 30)                         # warm-up
    time.sleep(1.0)
    before = rss_kib(pid)
    setup_time = held / rate
    proc = caller(directory, port, rate, held, hold * 1000, held + 10,
                  setup_time + hold + 40, wait=False)
    time.sleep(setup_time + 3.0)          # every call set up (each takes milliseconds)
    during = rss_kib(pid)
    steady = None
    if hold > 40:
        # 64*T1 later the setup transactions (407, INVITE, ACK waits) are gone: the calls alone
        time.sleep(35.0)
        steady = rss_kib(pid)
    out, _ = proc.communicate(timeout=hold + 60)
    result = _counts(out, proc.returncode)
    per = (during - before) * 1024 / held
    print(f"memory: RSS {before / 1024:.1f} MiB before, {during / 1024:.1f} MiB with {held} calls "
          f"held -> {per / 1024:.1f} KiB per established call with its setup transactions "
          f"(SIPp: {result['ok']} ok, {result['failed']} failed)")
    if steady is not None:
        print(f"        {steady / 1024:.1f} MiB once the transactions ended -> "
              f"{(steady - before) * 1024 / held / 1024:.1f} KiB per established call "
              f"(RSS rarely shrinks: an upper bound)")
    if result["ok"] < held * 0.99:
        print("  warning: not every held call succeeded; the figure is an estimate")
    sys.stdout.flush()


def heap_per_call(count: int) -> None:
    """The Python heap of established calls, measured in-process with tracemalloc: the real
    SipCore and CallManager (tests/call/fakes.py, fake network, task.Clock), ``count`` calls
    answered and ACKed, then the clock moved past 64*T1 so that only the calls remain."""
    import gc
    import tracemalloc

    from twisted.trial.unittest import SynchronousTestCase

    from tests.call.fakes import SDP, Switch

    class _Case(SynchronousTestCase):
        def runTest(self):
            pass
    case = _Case()
    sw = Switch(case)
    sw.extension(CALLER)
    sw.extension(CALLEE)
    a, b = sw.phone(CALLER, 5061, register=False), sw.phone(CALLEE, 5062)

    def call():
        out = a.invite(CALLEE)
        inc = b.incoming()
        inc.respond(180)
        inc.respond(200, SDP)
        ok = a.take(200)
        b.take("ACK")
        out.ack(ok)
        a.inbox.clear()
        b.inbox.clear()
    for _ in range(50):
        call()
    sw.advance(40)
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    for _ in range(count):
        call()
    setup = tracemalloc.get_traced_memory()[0]
    sw.advance(40)
    gc.collect()
    steady = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    held = len(sw.calls.calls) - 50
    print(f"heap: {(setup - base) / count / 1024:.1f} KiB per call just set up (transactions "
          f"included), {(steady - base) / count / 1024:.1f} KiB per established call once "
          f"they ended ({held} calls held; Python objects, tracemalloc, in-process)")
    case.doCleanups()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="100,200,300,500,700,1000")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each step")
    parser.add_argument("--held", type=int, default=2000, help="calls held for the memory test")
    parser.add_argument("--held-rate", type=int, default=250)
    parser.add_argument("--hold", type=int, default=45, help="seconds the held calls last")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--heap-only", action="store_true",
                        help="only the in-process heap measurement (no SIPp, no switch)")
    parser.add_argument("--log-level", default="warn", help="the switch's [log] level")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--profile", default="", metavar="FILE",
                        help="run the switch under cProfile and save the stats to FILE")
    args = parser.parse_args(argv)
    if shutil.which("sipp") is None:
        sys.exit("sipp is not installed (apt-get install sip-tester)")
    if not args.no_memory or args.heap_only:
        heap_per_call(args.held)
        if args.heap_only:
            return 0
    rates = [int(r) for r in args.rates.split(",")]
    directory = tempfile.mkdtemp(prefix="mss-bench-calls-")
    port, uas_port = free_port(), free_port()
    write_config(directory, {
        "sip": {"domain": REALM, "bind": "127.0.0.1", "port": port, "transports": ["udp"]},
        "log": {"level": args.log_level},
        "store": {"path": "mss.sqlite", "poll_interval": 1.0},
        "security": {"allow": ["127.0.0.1/32"]},
        "calls": {"max_setup": 100000, "no_answer_timeout": 30, "max_duration": 0},
        "media": {"mode": "off"},
    })
    provision(directory, uas_port)
    memory = 0 if args.no_memory else args.held / args.held_rate + args.hold + 60
    lifetime = int(len(rates) * (args.seconds * 2 + 30) + memory + 60)
    proc = start_switch(directory, port, lifetime, os.path.abspath(args.profile) if args.profile else "")
    pid = switch_pid(proc)
    uas = start_uas(directory, port, uas_port, lifetime)
    best = 0.0
    try:
        if not args.no_memory:
            memory_test(directory, port, pid, args.held, args.held_rate, args.hold)
        print(f"{'offered/s':>10} {'calls':>7} {'ok':>7} {'failed':>7} {'lost':>6} "
              f"{'achieved/s':>11} {'switch CPU/call':>16}")
        for rate in rates:
            calls = int(rate * args.seconds)
            cpu0 = cpu_seconds(pid)
            t0 = time.monotonic()
            step = caller(directory, port, rate, calls, 0, max(1000, rate * 4),
                          args.seconds * 2 + 20)
            elapsed = time.monotonic() - t0
            cpu = cpu_seconds(pid) - cpu0
            if not report_step(rate, calls, step["ok"], step["failed"], cpu, elapsed):
                break
            best = max(best, rate)
            time.sleep(2.0)                      # let the transactions of the step drain
    finally:
        stop_all([(uas, uas.pid), (proc, pid)], directory, args.keep)
    print(f"best: {best:.0f} calls/s sustained with <1% failed calls "
          f"(INVITE/407/INVITE/180/200/ACK/BYE); target 500/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
