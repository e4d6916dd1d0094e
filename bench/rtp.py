"""RTP relay and mixer benchmark for the mss media gateway (see bench/README.md).

Real-shaped load: N calls, each with two legs that send 172-byte RTP (PCMU, 20 ms) from their
own UDP sockets, set up through the ng control protocol (offer/answer), so the gateway latches
every leg separately and relays 2 x 50 x N packets/s. For each step the load runs for a fixed
time and we report loss, one-way latency through the gateway (p50/p99/p99.9), the gateway's CPU
(all its processes, % of one core), and the same load sent directly leg-to-leg without the
gateway as the latency floor of the generator and the kernel. Then mixing rooms of three
participants: CPU per room, hence rooms per core.

The load generator is bench/rtpload.c (compiled with cc on the fly) so that it costs little CPU
next to the gateway on a small machine; its own CPU is printed too. Bounded: every step runs
``--seconds`` (default 8) plus setup; the whole run is a few minutes at most.

usage: python bench/rtp.py [--steps 100,200,400,600,800] [--seconds 8] [--workers 1]
                           [--rooms 20,50,100] [--no-baseline] [--pin] [--nice -10]

On a machine shared with other work, watch the PSI column and the generator's "late" count:
when other processes keep the CPUs busy, the gateway and the generator wait in the run queue
and the latency figures grow with that wait, not with the gateway's work (check
/proc/<pid>/schedstat: the second number is time spent waiting for a CPU).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from mss.media import ng  # noqa: E402
from mss.media.child import child_env, twistd_argv  # noqa: E402

CLK = os.sysconf("SC_CLK_TCK")
PIN_GENERATOR = None          # set by --pin: keep the generator off the gateway's core(s)


def sdp(port: int) -> str:
    return ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            f"m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")


class Control:
    """A blocking ng client for the benchmark's set-up (not the hot path)."""

    def __init__(self, port: int):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.addr = ("127.0.0.1", port)
        self.n = 0

    def __call__(self, timeout: float = 2.0, **msg) -> dict:
        self.n += 1
        cookie = b"b%d" % self.n
        data = ng.format(cookie, msg)
        for attempt in range(5):
            self.sock.sendto(data, self.addr)
            self.sock.settimeout(timeout)
            try:
                while True:
                    got, _ = self.sock.recvfrom(65535)
                    c, reply = ng.parse(got)
                    if c == cookie:
                        if reply.get("result") == "error":
                            raise RuntimeError(f"{msg['command']}: {reply.get('error-reason')}")
                        return reply
            except socket.timeout:
                continue
        raise RuntimeError(f"no answer to {msg['command']}")


def port_of(text: str) -> int:
    for line in text.split("\r\n"):
        if line.startswith("m=audio "):
            return int(line.split()[1])
    raise RuntimeError("no m=audio in " + text)


def descendants(pid: int) -> list[int]:
    out = [pid]
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                for child in f.read().split():
                    out.extend(descendants(int(child)))
    except OSError:
        pass
    return out


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return total / CLK


def cpu_pressure() -> str:
    """Share of the last 10 s in which some runnable task waited for a CPU (Linux PSI):
    high values mean other processes competed with the gateway and the generator."""
    try:
        with open("/proc/pressure/cpu") as f:
            return f.readline().split()[1].split("=")[1] + "%"
    except (OSError, IndexError):
        return "n/a"


def udp_socket() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    s.bind(("127.0.0.1", 0))
    return s


def run_load(binary: str, legs: list[tuple[socket.socket, int, int]], seconds: float) -> dict:
    for s, _, _ in legs:     # packets queued before this run (a mixer's output, late packets
        s.setblocking(False)  # of an earlier run) must not count
        try:
            while s.recv(2048):
                pass
        except BlockingIOError:
            pass
    lines = "".join(f"{s.fileno()} {dest} {sid}\n" for s, dest, sid in legs)
    proc = subprocess.run([binary, str(seconds), str(len(legs))], input=lines.encode(),
                          pass_fds=[s.fileno() for s, _, _ in legs], capture_output=True,
                          timeout=seconds + 30, preexec_fn=PIN_GENERATOR)
    if proc.returncode:
        raise RuntimeError(proc.stderr.decode())
    return json.loads(proc.stdout)


def relay_step(binary, control, gw_pids, calls, seconds, baseline):
    socks = []
    legs = []
    for i in range(calls):
        a, b = udp_socket(), udp_socket()
        socks += [a, b]
        cid = f"bench-{calls}-{i}"
        o = control(command="offer", **{"call-id": cid, "from-tag": "a",
                                        "sdp": sdp(a.getsockname()[1])})
        r = control(command="answer", **{"call-id": cid, "from-tag": "a", "to-tag": "b",
                                         "sdp": sdp(b.getsockname()[1])})
        legs.append((a, port_of(r["sdp"]), 2 * i))
        legs.append((b, port_of(o["sdp"]), 2 * i + 1))
    pids = [p for g in gw_pids for p in descendants(g)]
    c0, t0 = cpu_seconds(pids), time.monotonic()
    result = run_load(binary, legs, seconds)
    result["gateway_cpu"] = (cpu_seconds(pids) - c0) / (time.monotonic() - t0)
    for i in range(calls):
        control(command="delete", **{"call-id": f"bench-{calls}-{i}"})
    if baseline:
        direct = [(a, b.getsockname()[1], 0) for a, b in zip(socks[::2], socks[1::2])]
        direct += [(b, a.getsockname()[1], 0) for a, b in zip(socks[::2], socks[1::2])]
        result["direct"] = run_load(binary, direct, seconds)
    for s in socks:
        s.close()
    return result


def room_step(binary, control, gw_pids, rooms, seconds):
    socks, legs = [], []
    for r in range(rooms):
        for p in range(3):
            s = udp_socket()
            socks.append(s)
            reply = control(command="room-join", room=f"bench-room-{r}",
                            **{"call-id": f"room-{r}-{p}", "from-tag": "t",
                               "sdp": sdp(s.getsockname()[1])})
            legs.append((s, port_of(reply["sdp"]), len(legs)))
    pids = [p for g in gw_pids for p in descendants(g)]
    c0, t0 = cpu_seconds(pids), time.monotonic()
    result = run_load(binary, legs, seconds)
    result["gateway_cpu"] = (cpu_seconds(pids) - c0) / (time.monotonic() - t0)
    for r in range(rooms):
        for p in range(3):
            control(command="delete", **{"call-id": f"room-{r}-{p}"})
    for s in socks:
        s.close()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", default="100,200,400,600,800")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--rooms", default="20,50,100")
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--pin", action="store_true",
                        help="gateway on the first cores, generator on the last one")
    parser.add_argument("--nice", type=int, default=0,
                        help="run gateway and generator at this nice value (e.g. -10, needs "
                             "root) to shield the measurement from other load on the machine")
    args = parser.parse_args()
    global PIN_GENERATOR
    cores = sorted(os.sched_getaffinity(0))
    gateway_cores = None
    if args.pin and len(cores) >= 2:
        gateway_cores = set(cores[:-1])
    if args.nice:
        os.nice(args.nice)          # inherited by the gateway and every generator run
    if args.pin and len(cores) >= 2:
        PIN_GENERATOR = lambda: os.sched_setaffinity(0, {cores[-1]})  # noqa: E731

    tmp = tempfile.mkdtemp(prefix="mss-bench-")
    binary = os.path.join(tmp, "rtpload")
    subprocess.run(["cc", "-O2", "-o", binary, os.path.join(ROOT, "bench", "rtpload.c")],
                   check=True)
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    low = random.randrange(30000, 40000, 2)
    config = os.path.join(tmp, "mss-media.toml")
    with open(config, "w") as f:
        f.write(f'[media]\ncontrol = "127.0.0.1:{port}"\nrtp_ports = "{low}-{low + 19999}"\n'
                f'public_address = "127.0.0.1"\nmedia_timeout = 600\nworkers = {args.workers}\n')
    log = open(os.path.join(tmp, "gateway.log"), "w")
    gateway = subprocess.Popen(
        twistd_argv("mss-media", "--config", config), env=child_env(), stdout=log,
        stderr=subprocess.STDOUT, cwd=tmp,
        preexec_fn=(lambda: os.sched_setaffinity(0, gateway_cores)) if gateway_cores else None)
    try:
        control = Control(port)
        deadline = time.monotonic() + 30
        while True:
            try:
                control(command="ping", timeout=0.3)
                if args.workers > 1:      # ping answers once the workers run; list proves it
                    control(command="list", timeout=0.5)
                break
            except RuntimeError:
                if time.monotonic() > deadline or gateway.poll() is not None:
                    raise RuntimeError("gateway did not start; see " + log.name)
        print(f"# mss-media, {args.workers} worker process(es), {os.cpu_count()} cores; "
              f"{args.seconds:.0f} s per step; generator: bench/rtpload.c; "
              f"{'gateway on cores %s, generator on core %d' % (sorted(gateway_cores), cores[-1]) if gateway_cores else 'no pinning'}; "
              f"nice {os.nice(0)}; "
              f"load average before: {os.getloadavg()[0]:.2f}")
        print(f"# {'calls':>5} {'pkt/s':>7} {'loss %':>7} {'p50 ms':>7} {'p99 ms':>7} "
              f"{'p99.9':>7} {'gw CPU%':>7} {'us/pkt':>6} {'gen CPU%':>8} {'PSI':>6} | direct: {'p50':>6} {'p99':>6} {'loss %':>7}")
        for calls in [int(x) for x in args.steps.split(",") if x]:
            r = relay_step(binary, control, [gateway.pid], calls, args.seconds,
                           not args.no_baseline)
            loss = 100.0 * (r["sent"] - r["received"]) / max(1, r["sent"])
            line = (f"  {calls:>5} {r['sent'] / args.seconds:>7.0f} {loss:>7.3f} {r['p50_ms']:>7.3f} "
                    f"{r['p99_ms']:>7.3f} {r['p999_ms']:>7.3f} {100 * r['gateway_cpu']:>7.1f} "
                    f"{1e6 * r['gateway_cpu'] / max(1, r['sent'] / args.seconds):>6.2f} "
                    f"{100 * r['generator_cpu_s'] / r['elapsed_s']:>8.1f} {cpu_pressure():>6}")
            if "direct" in r:
                d = r["direct"]
                dloss = 100.0 * (d["sent"] - d["received"]) / max(1, d["sent"])
                line += f" | {d['p50_ms']:>13.3f} {d['p99_ms']:>6.3f} {dloss:>7.3f}"
            if r["late_sends"]:
                line += f"  (generator late >5 ms: {r['late_sends']} sends)"
            print(line, flush=True)
        print(f"# mixing rooms of 3 PCMU participants (each sends 50 pkt/s, receives its mix-minus)")
        print(f"# {'rooms':>5} {'in pkt/s':>8} {'out pkt/s':>9} {'gw CPU%':>7} {'rooms/core':>10}")
        for rooms in [int(x) for x in args.rooms.split(",") if x]:
            r = room_step(binary, control, [gateway.pid], rooms, args.seconds)
            per_core = rooms / r["gateway_cpu"] if r["gateway_cpu"] > 0 else float("inf")
            print(f"  {rooms:>5} {r['sent'] / args.seconds:>8.0f} {r['received'] / r['elapsed_s']:>9.0f} "
                  f"{100 * r['gateway_cpu']:>7.1f} {per_core:>10.0f}", flush=True)
    finally:
        gateway.terminate()
        try:
            gateway.wait(10)
        except subprocess.TimeoutExpired:
            gateway.kill()
        log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
