"""A fleet operator's numbers for one replica: start cold and warm, reloads under load, and
memory across reloads (issue 19).

Usage: python bench/reload_bench.py [--rules 100000] [--workers 0] [--reloads 10]
                                    [--rate 400] [--steady 10]

Runs the decision service (`mode: authz`) on loopback with N synthetic rules (everyday words,
`intercept.curation.rulebench.make_rules`) in a temporary folder, with its own compiled cache
folder; `--workers 0` is one process (no `--workers`), `--workers N` a supervisor and N
workers. It measures:

- start cold (empty compiled cache) and warm (the same files again), from the process's
  start until `/readyz` answers 200;
- benign searches at a fixed rate (`--rate` per second, open loop: a search's latency counts
  from when it was due, so a stall delays every search due meanwhile) for `--steady`
  seconds, then during each of `--reloads` reloads (one rule added, then SIGHUP), from the
  SIGHUP until every serving process serves the new version: p50, p99, max and answered
  searches per second in each window;
- memory after the first load and after each reload (5 s after it finished): resident set
  of the process, or with workers the total PSS of the supervisor and its workers (a page
  shared by k processes counts 1/k in each).

Prints a line per measurement and a summary with the ratios the issue sets targets for.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.proxy_bench import _free_port  # noqa: E402
from bench.worker_memory import HEAD, rule_lines, total_mib, wait_for, write_rules  # noqa: E402

QUERIES = ["plain words", "weather tomorrow", "cheap flights", "garden chairs", "news today"]


def _command(folder: Path, public: int, admin: str, workers: int) -> list[str]:
    command = [sys.executable, "-m", "intercept", "serve", "--mode", "authz",
               "--listen", f"127.0.0.1:{public}", "--admin-listen", admin,
               "--rules", str(folder), "--messages", str(ROOT / "messages")]  # fmt: skip
    return command + (["--workers", str(workers)] if workers else [])


def _environment(cache: Path) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"},
        "INTERCEPT_WARN__SECRET": "a-benchmark-secret-of-enough-length",
        "INTERCEPT_LEDGER__URL": "null",
        "INTERCEPT_RELOAD__WATCH": "false",
        "INTERCEPT_RULES_CACHE": str(cache),
        "PYTHONPATH": str(ROOT),
    }


def _ready(admin: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{admin}/readyz", timeout=5) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False


def _status(admin: str) -> dict[str, object]:
    import json

    with urllib.request.urlopen(f"http://{admin}/admin/status", timeout=30) as reply:
        status: dict[str, object] = json.loads(reply.read())
        return status


def _version(admin: str, workers: int, old: set[str]) -> str:
    """The version served once it is not in `old` (every worker's, with workers)."""
    if workers:
        return wait_for(admin, workers, old)
    while True:
        try:
            rules = _status(admin)["rules"]
            assert isinstance(rules, dict)
            if str(rules["version"]) not in old:
                return str(rules["version"])
        except OSError:
            pass
        time.sleep(0.1)


def _memory_mib(pid: int, workers: int) -> int:
    if workers:
        return total_mib(pid)[0]
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024
    return 0


class Searches:
    """Benign searches at a fixed rate, open loop, until stopped; each one's due time and
    latency (seconds, from when it was due), or None for a failure."""

    def __init__(self, public: int, rate: float) -> None:
        self.url = f"http://127.0.0.1:{public}/_intercept/authz/search"
        self.rate = rate
        self.done: list[tuple[float, float | None]] = []
        self.stop = asyncio.Event()

    async def run(self) -> None:
        connector = aiohttp.TCPConnector(limit=256)
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            tasks: set[asyncio.Task[None]] = set()
            start, number = time.monotonic(), 0
            while not self.stop.is_set():
                due = start + number / self.rate
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                query = QUERIES[number % len(QUERIES)]
                task = asyncio.create_task(self.one(session, due, query))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                number += 1
            await asyncio.gather(*tasks)

    async def one(self, session: aiohttp.ClientSession, due: float, query: str) -> None:
        try:
            async with session.get(self.url, params={"q": query}) as reply:
                await reply.read()
                ok = reply.status == 200
        except (aiohttp.ClientError, TimeoutError):
            ok = False
        self.done.append((due, time.monotonic() - due if ok else None))

    def window(self, begin: float, end: float) -> dict[str, float]:
        """p50, p99, max latency (ms), answered per second and failures of the searches
        due in [begin, end)."""
        inside = [latency for due, latency in self.done if begin <= due < end]
        answered = sorted(latency for latency in inside if latency is not None)
        if not answered:
            return {"p50": 0, "p99": 0, "max": 0, "rate": 0, "failed": len(inside)}
        cut = statistics.quantiles(answered, n=100) if len(answered) > 1 else answered * 99
        return {
            "p50": cut[49] * 1000,
            "p99": cut[98] * 1000,
            "max": answered[-1] * 1000,
            "rate": len(answered) / (end - begin),
            "failed": len(inside) - len(answered),
        }


def _line(name: str, window: dict[str, float]) -> str:
    return (f"{name}: p50 {window['p50']:.1f} ms, p99 {window['p99']:.1f} ms, max "
            f"{window['max']:.0f} ms, {window['rate']:.0f} answered/s, "
            f"{window['failed']:.0f} failed")  # fmt: skip


def start_timed(
    command: list[str], environment: dict[str, str], admin: str, log: str | None = None
) -> tuple[subprocess.Popen[str], float]:
    """The server, started (its stderr appended to `log`, if named); and the seconds until
    its `/readyz` said 200."""
    began = time.monotonic()
    stderr = open(log, "a") if log else subprocess.DEVNULL  # noqa: SIM115 - the child's
    proc = subprocess.Popen(command, cwd=ROOT, env=environment, stdout=subprocess.DEVNULL,
                            stderr=stderr, text=True)  # fmt: skip
    while not _ready(admin):
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with {proc.returncode}")
        time.sleep(0.05)
    return proc, time.monotonic() - began


def _replace(path: Path, text: str) -> None:
    """`path` replaced whole by `text` (a rename: a reader never sees half a file)."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=120)


async def reloads_under_load(
    proc: subprocess.Popen[str], admin: str, folder: Path, options: argparse.Namespace
) -> None:
    """Steady load, then each reload under it; prints the windows and memory."""
    public = options.public
    # made before the load starts: making them meanwhile would hold this process's GIL
    # and delay the searches it sends, which would count against the server
    texts = [
        "\n".join([*HEAD, *rule_lines(options.rules, number)]) + "\n"
        for number in range(1, options.reloads + 1)
    ]
    searches = Searches(public, options.rate)
    runner = asyncio.create_task(searches.run())
    version = await asyncio.to_thread(_version, admin, options.workers, set())
    first = _memory_mib(proc.pid, options.workers)
    print(f"memory after the first load: {first} MiB", flush=True)
    began = time.monotonic()
    await asyncio.sleep(options.steady)
    steady = searches.window(began + 1, time.monotonic())
    print(_line("steady", steady), flush=True)
    during: list[dict[str, float]] = []
    memory: list[int] = []
    took: list[float] = []
    reload_marks: list[tuple[float, float]] = []
    for number in range(1, options.reloads + 1):
        await asyncio.to_thread(_replace, folder / "big.yaml", texts[number - 1])
        sighup = time.monotonic()
        proc.send_signal(signal.SIGHUP)
        version = await asyncio.to_thread(_version, admin, options.workers, {version})
        served = time.monotonic()
        await asyncio.sleep(1.0)  # searches due just before the swap are answered after it
        window = searches.window(sighup, served)
        reload_marks.append((sighup, served))
        during.append(window)
        took.append(served - sighup)
        print(_line(f"reload {number} ({served - sighup:.1f} s)", window), flush=True)
        await asyncio.sleep(4.0)
        memory.append(_memory_mib(proc.pid, options.workers))
        print(f"memory after reload {number}: {memory[-1]} MiB", flush=True)
    searches.stop.set()
    await runner
    if options.timeline:  # every search: seconds since the first SIGHUP's window, latency
        marks = "\n".join(f"{due:.4f} {latency}" for due, latency in searches.done)
        offset = time.time() - time.monotonic()
        Path(options.timeline).write_text(
            f"# wall = due + {offset}\n# reloads {reload_marks}\n{marks}\n"
        )
    worst = max(during, key=lambda window: window["p99"])
    p99 = statistics.median(window["p99"] for window in during)
    rate = statistics.median(window["rate"] for window in during)
    print(f"SUMMARY reload: {statistics.median(took):.1f} s median; p99 during / steady: "
          f"{p99 / steady['p99']:.2f}x median, {worst['p99'] / steady['p99']:.2f}x worst; "
          f"answered/s during / steady: {rate / steady['rate']:.2f}x median, "
          f"{min(w['rate'] for w in during) / steady['rate']:.2f}x lowest")  # fmt: skip
    print(
        f"SUMMARY memory: first {first} MiB, after reload 1 {memory[0]} MiB, after reload "
        f"{len(memory)} {memory[-1]} MiB ({memory[-1] / first:.2f}x the first load)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rules", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=0, help="0: one process")
    parser.add_argument("--reloads", type=int, default=10)
    parser.add_argument("--rate", type=float, default=400.0, help="searches per second")
    parser.add_argument("--steady", type=float, default=10.0, help="seconds before reloads")
    parser.add_argument("--timeline", metavar="FILE", help="write every search's latency")
    parser.add_argument("--server-log", metavar="FILE", help="the server's log, appended")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="intercept-reload-") as temporary:
        folder, cache = Path(temporary, "rules"), Path(temporary, "cache")
        folder.mkdir()
        write_rules(folder, options.rules, 0)
        options.public, admin_port = _free_port(), _free_port()
        admin = f"127.0.0.1:{admin_port}"
        command = _command(folder, options.public, admin, options.workers)
        environment = _environment(cache)
        proc, cold = start_timed(command, environment, admin)
        deadline = time.monotonic() + 120
        while not any(cache.glob("*.rules")) and time.monotonic() < deadline:
            time.sleep(0.2)  # the entry is written by a child after the start
        stop(proc)
        proc, warm = start_timed(command, environment, admin, options.server_log)
        print(f"SUMMARY start: cold {cold:.1f} s, warm {warm:.1f} s ({options.rules} rules, "
              f"{'one process' if not options.workers else f'{options.workers} workers'})",
              flush=True)  # fmt: skip
        try:
            asyncio.run(reloads_under_load(proc, admin, folder, options))
        finally:
            stop(proc)


if __name__ == "__main__":
    main()
