"""Switch CPU per call and per registration, in-process, and where it goes (cProfile).

The real switch (``mss.tap.Switch``: parser, transaction layer, registrar, call manager, Lua
services, SQLite store) runs on a ``MemoryReactorClock`` with its UDP output captured
(``tests/admin/phones.py``); phones are hand-made messages. Only the switch's own work is
timed and profiled: delivering a datagram to the shell and ending the reactor turn (where it
sends), and the timers it runs as the clock moves. Building the phones' messages and parsing
what the switch sent are outside the measurement. No network, no other process, so the
figures are steady from run to run (CPU time, not wall time) and comparable across commits:

- a call: INVITE -> 407 -> ACK -> INVITE with credentials -> 100/180/200 from the callee ->
  ACK -> BYE from the caller -> 200 from the callee (the bench/calls.py flow);
- a registration: REGISTER -> 401 -> REGISTER with credentials -> 200 (group commit).

    PYTHONPATH=. python bench/profile.py [--calls 2000] [--registrations 2000] [--top 25]
        [--profile calls|registrations]

It prints microseconds of switch CPU per call and per registration (median of ``--runs``
runs) and, with ``--profile``, the functions with the most cumulative and own time.
"""
from __future__ import annotations

import os
import sys

# this file is named like the standard library's ``profile``, which cProfile imports: keep
# its folder off the path, and the repository root on it
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]
sys.path.insert(0, os.path.dirname(_HERE))

import argparse  # noqa: E402
import cProfile  # noqa: E402
import gc  # noqa: E402
import io  # noqa: E402
import pstats  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from mss.sip.parser import parse  # noqa: E402
from tests.admin.phones import LiveSwitch, Phone, provision  # noqa: E402


class MeasuredSwitch(LiveSwitch):
    """LiveSwitch whose own work is timed (and optionally profiled); output parsed lazily."""

    def __init__(self, directory: str, profiler: cProfile.Profile | None = None):
        super().__init__(directory, {"log": {"level": "warn"}})
        self.cpu = 0.0
        self.profiler = profiler
        self.raw: list = []

    def send(self, data: bytes, dest) -> None:
        self.raw.append((data, dest))

    def _timed(self, fn, *args) -> None:
        if self.profiler is not None:
            self.profiler.enable()
        start = time.process_time()
        fn(*args)
        self.cpu += time.process_time() - start
        if self.profiler is not None:
            self.profiler.disable()

    def deliver(self, data: bytes, source) -> None:
        self._timed(super().deliver, data, source)

    def advance(self, seconds: float) -> None:
        self._timed(self.reactor.advance, seconds)

    def take(self, port: int) -> list:
        self._timed(self.reactor.advance, 0)
        mine = [parse(d)[0] for d, a in self.raw if a.port == port]
        self.raw = [(d, a) for d, a in self.raw if a.port != port]
        return mine


def run_calls(count: int, profiler=None) -> float:
    """Switch CPU seconds for ``count`` calls."""
    live = MeasuredSwitch(tempfile.mkdtemp(prefix="mss-bench-"), profiler)
    provision(live, "1001", "1002")
    caller = Phone(live, "1001", "pw-1001", 40001)
    callee = Phone(live, "1002", "pw-1002", 40002)
    callee.register()
    live.cpu = 0.0
    for n in range(count):
        caller.invite("1002")
        callee.answer()
        caller.ack_answer()
        live.take(callee.port)                  # the switch's ACK to the callee
        caller.bye()
        callee.answer_bye()
        live.take(caller.port)                  # the 200 for the caller's BYE
        if n % 100 == 99:
            live.advance(1.0)                   # time passes: transaction timers run
    live.advance(40)                            # every transaction ends
    cpu = live.cpu
    live.close()
    return cpu


def run_registrations(count: int, profiler=None) -> float:
    """Switch CPU seconds for ``count`` registrations of different extensions."""
    live = MeasuredSwitch(tempfile.mkdtemp(prefix="mss-bench-"), profiler)
    numbers = [str(2000 + n) for n in range(count)]
    provision(live, *numbers)
    phones = [Phone(live, n, f"pw-{n}", 10000 + i) for i, n in enumerate(numbers)]
    live.cpu = 0.0
    for i, phone in enumerate(phones):
        phone.register()
        if i % 100 == 99:
            live.advance(1.0)
    live.advance(40)
    cpu = live.cpu
    live.close()
    return cpu


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--registrations", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--profile", choices=("calls", "registrations"))
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    gc.freeze()                                 # as the switch does after start-up
    if args.profile:
        profiler = cProfile.Profile()
        runner = run_calls if args.profile == "calls" else run_registrations
        count = args.calls if args.profile == "calls" else args.registrations
        runner(count, profiler)
        for order in ("cumulative", "tottime"):
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats(order).print_stats(args.top)
            print(f"--- {args.profile}, by {order} ---")
            print(out.getvalue())
        return 0
    for name, runner, count in (("call", run_calls, args.calls),
                                ("registration", run_registrations, args.registrations)):
        if not count:
            continue
        per = [runner(count) / count * 1e6 for _ in range(args.runs)]
        print(f"switch CPU per {name}: {statistics.median(per):.0f} us "
              f"(median of {args.runs} runs of {count}: "
              f"{', '.join(f'{p:.0f}' for p in per)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
