"""Time the Lua service hooks add to a call, with every standard service enabled.

Runs the bundled ``lua/services`` on a real SQLite store (temporary file) provisioned like a
mid-size PBX: 200 extensions (some with forwarding, DND, levels, rights), 2,000 black-list
rows, 50 white-list rows and 20 call-level prefixes. Each simulated call runs the hooks the
call core runs for an answered internal or outbound call (originating, terminating, answered,
ended) and, for a share of calls, busy or no_answer. Figures are microseconds per call
(p50/p99) over five rounds and all together, warm caches (the normal case: caches are dropped only when another process changes
the store) and cold caches (dropped before every call: the worst case). Target: under 200 µs
per call in total.

    PYTHONPATH=. python bench/services.py [--calls N] [--max-seconds S]
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mss.services.api import CallFacts, CalleeState  # noqa: E402
from mss.services.engine import ServiceEngine, default_directory  # noqa: E402
from mss.store.sqlite import SQLiteStore  # noqa: E402


def provision(store: SQLiteStore, rng: random.Random) -> list[str]:
    numbers = [str(1000 + i) for i in range(200)]
    for i, number in enumerate(numbers):
        permissions = ["forward"] if i % 2 == 0 else []
        if i == 0:
            permissions.append("break_in")
        store.add_extension(number, "pw", "mss.local", permissions=permissions,
                            call_level=i % 4)
        if i % 10 == 0:
            store.set_extension_data("forwarding", number, "no_answer", "2000")
        if i % 25 == 0:
            store.set_extension_data("forwarding", number, "busy", "2001")
        if i % 50 == 7:
            store.set_extension_data("dnd", number, "on", True)
    for i in range(2000):
        store.add_row("blacklist", "blacklist", {
            "caller": f"49{rng.randrange(10 ** 7):07d}", "called": "*", "rate": 100,
            "description": "spam"})
    for i in range(50):
        store.add_row("blacklist", "whitelist", {"caller": f"4930{i:04d}", "called": "*"})
    store.add_row("blacklist", "blacklist", {"caller": "*", "called": "0900", "rate": 100})
    store.add_row("blacklist", "blacklist", {"caller": "anonymous", "called": "*", "rate": 50})
    for i in range(20):
        store.add_row("call_levels", "prefixes", {"prefix": f"00{i}", "level": 3})
    store.add_row("call_levels", "prefixes", {"prefix": "0900", "level": 5})
    return numbers


def one_call(engine: ServiceEngine, numbers: list[str], rng: random.Random, n: int,
             levels: dict) -> None:
    caller = rng.choice(numbers)
    outbound = n % 4 == 3
    callee = f"0{rng.randrange(10 ** 9):09d}" if outbound else rng.choice(numbers)
    facts = CallFacts(call_id=f"bench-{n}", caller=caller, callee=callee,
                      caller_display="Bench", direction="outbound" if outbound else "internal",
                      headers={"User-Agent": "bench"}, time=1.8e9 + n, caller_is_extension=True,
                      caller_level=levels[caller], caller_permissions=("forward",))
    decision = engine.originating(facts)
    if decision.action != "continue":
        return
    if not outbound:
        decision = engine.terminating(facts, CalleeState(busy=n % 20 == 0))
        if decision.action != "continue":
            return
        if n % 20 == 0:
            engine.busy(facts)
            return
        if n % 10 == 1:
            engine.no_answer(facts)
            return
    engine.answered(facts)
    engine.ended(facts, "normal")


def measure(engine, numbers, levels, calls, max_seconds, cold) -> list[float]:
    rng = random.Random(42)
    samples = []
    stop = time.perf_counter() + max_seconds
    for n in range(calls):
        if cold:
            engine.invalidate_caches()
        started = time.perf_counter_ns()
        one_call(engine, numbers, rng, n, levels)
        samples.append((time.perf_counter_ns() - started) / 1000)
        if time.perf_counter() > stop:
            break
    return samples


def report(label: str, samples: list[float]) -> None:
    samples = sorted(samples)
    p50 = statistics.median(samples)
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    print(f"{label:<12} calls={len(samples):>6}  p50={p50:7.1f} µs  p99={p99:7.1f} µs  "
          f"mean={statistics.fmean(samples):7.1f} µs")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--max-seconds", type=float, default=20.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteStore(os.path.join(tmp, "bench.sqlite"))
        rng = random.Random(1)
        numbers = provision(store, rng)
        levels = {e.number: e.call_level for e in store.list_extensions()}
        engine = ServiceEngine(store, default_directory(), seed=1)
        loaded = engine.reload()
        if not loaded.ok:
            print(f"services failed to load: {loaded.failed}")
            return 1
        print(f"services: {', '.join(engine.services)} (lupa Lua 5.4, SQLite store)")
        measure(engine, numbers, levels, 500, args.max_seconds, False)     # warm up
        # several rounds: the p99 of one round is at the mercy of other processes
        rounds = [measure(engine, numbers, levels, args.calls // 5, args.max_seconds / 5,
                          False) for _ in range(5)]
        for i, samples in enumerate(rounds, 1):
            report(f"warm round {i}", samples)
        report("warm caches", [x for samples in rounds for x in samples])
        report("cold caches", measure(engine, numbers, levels, min(args.calls, 5000),
                                      args.max_seconds, True))
        faults = sum(engine.service(n).faults for n in engine.services)
        print(f"faults during the run: {faults}")
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
