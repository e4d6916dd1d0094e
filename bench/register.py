"""Registration throughput of the real switch: REGISTERs per second with digest authentication.

Starts ``twistd -n mss`` from this checkout on a free loopback port with N extensions written
to its store, then drives SIPp with ``tests/sipp/register_csv.xml`` at increasing rates. Each
SIPp call is one registration of a different extension (an injection file gives number and
password): REGISTER -> 401 challenge -> authorised REGISTER -> 200, binding written through
to SQLite. A step passes when fewer than 1% of its registrations fail.

Printed per step: offered rate, registrations/s achieved (successful registrations over the
step's wall time), failures, and the switch's CPU time per registration (user+system, from
/proc), which tells whether the switch or SIPp was the limit. The whole run is bounded:
every step lasts about ``--seconds`` and SIPp is killed by ``-timeout``.

    PYTHONPATH=. python bench/register.py [--extensions 2000] [--seconds 4]
        [--rates 500,1000,2000,3000,4000]

Target (docs: bench/README.md): at least 2,000 registrations/s on one core.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tests.e2e.harness import free_port, write_config   # noqa: E402

SCENARIO = os.path.join(ROOT, "tests", "sipp", "register_csv.xml")
REALM = "bench.test"


def provision(store_path: str, count: int) -> list[tuple[str, str]]:
    from mss.store.sqlite import SQLiteStore
    store = SQLiteStore(store_path)
    users = [(str(100000 + i), f"pw{i:06d}x") for i in range(count)]
    try:
        for number, password in users:
            store.add_extension(number, password, REALM)
    finally:
        store.close()
    return users


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_switch(directory: str, port: int, lifetime: int, profile: str = "") -> subprocess.Popen:
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    log = open(os.path.join(directory, "switch.log"), "wb")
    proc = subprocess.Popen(
        ["timeout", "-s", "KILL", str(lifetime), sys.executable, "-c",
         "from twisted.scripts.twistd import run; run()", "--pidfile=",
         *([f"--profile={profile}", "--profiler=cprofile", "--savestats"] if profile else []),
         "-n", "mss",
         "--config", os.path.join(directory, "mss.toml")],
        cwd=directory, env=env, stdout=log, stderr=subprocess.STDOUT)
    # readiness: an OPTIONS answered (the log level is "warn", so no "SIP listening" line)
    options = (f"OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;"
               "branch=z9hG4bKready;rport\r\nMax-Forwards: 70\r\nFrom: <sip:b@127.0.0.1>;tag=1\r\n"
               "To: <sip:127.0.0.1>\r\nCall-ID: ready\r\nCSeq: 1 OPTIONS\r\n"
               "Content-Length: 0\r\n\r\n").encode()
    deadline = time.monotonic() + 20
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(0.1)
        while time.monotonic() < deadline and proc.poll() is None:
            s.sendto(options, ("127.0.0.1", port))
            try:
                if s.recv(4096).startswith(b"SIP/2.0 200"):
                    return proc
            except OSError:
                pass
    proc.terminate()            # timeout(1) passes SIGTERM on to the switch
    proc.wait(timeout=15)
    with open(os.path.join(directory, "switch.log"), "rb") as f:
        sys.exit("switch did not start:\n" + f.read().decode(errors="replace"))


def switch_pid(proc: subprocess.Popen) -> int:
    """The Python process under ``timeout``."""
    with open(f"/proc/{proc.pid}/task/{proc.pid}/children") as f:
        children = f.read().split()
    return int(children[0]) if children else proc.pid


_COUNT = re.compile(rb"^\s*(Successful call|Failed call)\s*\|\s*\d+\s*\|\s*(\d+)", re.M)


def report_step(rate: int, calls: int, ok: int, failed: int, cpu: float, elapsed: float) -> bool:
    """Print one step of a calls benchmark; True when under 1% of its calls failed or were lost."""
    achieved = ok / elapsed if elapsed else 0.0
    per = cpu / ok * 1e6 if ok else float("nan")
    print(f"{rate:>10} {calls:>7} {ok:>7} {failed:>7} {calls - ok - failed:>6} {achieved:>11.0f} "
          f"{per:>13.0f} us   (switch CPU {100 * cpu / elapsed:.0f}%)")
    sys.stdout.flush()
    if calls - ok > calls / 100:
        print(f"  more than 1% failed at {rate}/s: stopping")
        return False
    return True


def stop_all(processes, directory: str, keep: bool) -> None:
    """SIGTERM each (Popen, pid) we started, then wait (SIGKILL after 15 s); drop the files."""
    for p, target in processes:
        try:
            os.kill(target, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()
    if not keep:
        shutil.rmtree(directory, ignore_errors=True)
    else:
        print(f"files kept in {directory}")


def run_step(directory: str, port: int, rate: int, seconds: float, inf: str) -> dict:
    calls = int(rate * seconds)
    sipp_port = free_port()
    argv = ["sipp", "-sf", SCENARIO, f"127.0.0.1:{port}", "-i", "127.0.0.1", "-p", str(sipp_port),
            "-t", "u1", "-inf", inf, "-set", "expires", "3600", "-r", str(rate), "-rp", "1000",
            "-m", str(calls), "-l", str(max(200, rate)), "-timeout", f"{int(seconds * 3 + 10)}s",
            "-nostdin", "-max_socket", "1000"]
    started = time.monotonic()
    done = subprocess.run(argv, cwd=directory, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=seconds * 3 + 20)
    elapsed = time.monotonic() - started
    counts = dict((k.decode(), int(v)) for k, v in _COUNT.findall(done.stdout))
    ok, failed = counts.get("Successful call", 0), counts.get("Failed call", 0)
    return {"rate": rate, "calls": calls, "ok": ok, "failed": failed, "elapsed": elapsed,
            "achieved": ok / elapsed if elapsed else 0.0,
            "lost": calls - ok - failed, "code": done.returncode}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--extensions", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=4.0, help="length of each step")
    parser.add_argument("--rates", default="500,1000,2000,3000,4000")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--profile", default="", metavar="FILE",
                        help="run the switch under cProfile and save the stats to FILE")
    args = parser.parse_args(argv)
    if shutil.which("sipp") is None:
        sys.exit("sipp is not installed (apt-get install sip-tester)")
    rates = [int(r) for r in args.rates.split(",")]
    directory = tempfile.mkdtemp(prefix="mss-bench-register-")
    port = free_port()
    write_config(directory, {
        "sip": {"domain": REALM, "bind": "127.0.0.1", "port": port, "transports": ["udp"]},
        "log": {"level": "warn"},
        "store": {"path": "mss.sqlite", "poll_interval": 1.0},
        "registrar": {"max_expires": 3600},
        "security": {"allow": ["127.0.0.1/32"]},
        "media": {"mode": "off"},
    })
    t0 = time.monotonic()
    users = provision(os.path.join(directory, "mss.sqlite"), args.extensions)
    inf = os.path.join(directory, "users.csv")
    with open(inf, "w") as f:
        f.write("SEQUENTIAL\n")
        f.writelines(f"{n};{p}\n" for n, p in users)
    print(f"provisioned {len(users)} extensions in {time.monotonic() - t0:.1f}s")
    lifetime = int(len(rates) * (args.seconds * 3 + 25) + 30)
    proc = start_switch(directory, port, lifetime, os.path.abspath(args.profile) if args.profile else "")
    pid = switch_pid(proc)
    best = 0.0
    print(f"{'offered/s':>10} {'regs':>7} {'ok':>7} {'failed':>7} {'lost':>6} "
          f"{'achieved/s':>11} {'switch CPU/reg':>15}")
    try:
        for rate in rates:
            cpu0 = cpu_seconds(pid)
            step = run_step(directory, port, rate, args.seconds, inf)
            cpu = cpu_seconds(pid) - cpu0
            bad = step["calls"] - step["ok"]
            per = cpu / step["ok"] * 1e6 if step["ok"] else float("nan")
            print(f"{rate:>10} {step['calls']:>7} {step['ok']:>7} {step['failed']:>7} "
                  f"{step['lost']:>6} {step['achieved']:>11.0f} {per:>12.0f} us")
            sys.stdout.flush()
            if bad > step["calls"] / 100:
                print(f"  more than 1% failed at {rate}/s: stopping")
                break
            best = max(best, step["achieved"])
            if step["achieved"] < 0.8 * rate:
                print(f"  saturated: {step['achieved']:.0f}/s achieved of {rate}/s offered")
                break
    finally:
        stop_all([(proc, pid)], directory, args.keep)
    print(f"best: {best:.0f} registrations/s with digest auth (<1% failures); "
          f"{2 * best:.0f} REGISTER requests/s; target 2000/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
