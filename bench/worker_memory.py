"""Memory of `intercept serve --workers N` across reloads: total PSS of the supervisor and its
workers at start and after each of 3 reloads (one synthetic rule added, then SIGHUP).

Usage: python bench/worker_memory.py [--rules 50000] [--workers 2] [--reloads 3]

Runs the decision service (`mode: authz`) on loopback with N synthetic rules (everyday words,
`intercept.curation.rulebench.make_rules`) in a temporary folder. After each SIGHUP it waits until
every worker listed by `/admin/status` serves the new version (and none the old), then 5 s more,
and sums `Pss` from `/proc/PID/smaps_rollup` over the supervisor and its children. PSS
counts a page shared by k processes as 1/k in each, so the total is the memory the group
really costs. Prints one line per measurement and the ratio "after the last reload / start".
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Self

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.proxy_bench import _free_port  # noqa: E402
from intercept.curation.rulebench import make_rules  # noqa: E402

HEAD = [
    "list: {name: big, source: synthetic, updated: 2026-11-29}",
    "defaults: {category: demo, action: block, language: en}",
    "rules:",
]


def rule_lines(count: int, extra: int) -> list[str]:
    """`count` synthetic rules and `extra` more (EXTRA-n, "zzextraN phrase"), a YAML line
    each, as they go under a rule file's `rules:`."""
    lines = []
    for spec in make_rules(count):
        term = spec.terms[0] if spec.terms else f"{spec.id.lower()} x"
        lines.append(f'  - {{id: {spec.id}, terms: ["{term}"]}}')
    lines += [f'  - {{id: EXTRA-{n}, terms: ["zzextra{n} phrase"]}}' for n in range(extra)]
    return lines


def write_rules(folder: Path, count: int, extra: int) -> None:
    """`count` synthetic rules and `extra` more, as one YAML file (replaced whole)."""
    lines = [*HEAD, *rule_lines(count, extra)]
    temporary = folder / ".big.yaml.tmp"
    temporary.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.replace(temporary, folder / "big.yaml")


def pss_kib(pid: int) -> int:
    """Proportional set size of `pid` in KiB; 0 once it is gone."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def children(parent: int) -> list[int]:
    """Living (not zombie) children of `parent`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            state, ppid = (entry / "stat").read_text().rpartition(")")[2].split()[:2]
        except OSError:
            continue
        if int(ppid) == parent and state != "Z":
            found.append(int(entry.name))
    return found


def total_mib(supervisor: int) -> tuple[int, dict[int, int]]:
    """Total PSS (MiB) of `supervisor` and its children, and each one's."""
    parts = {pid: pss_kib(pid) // 1024 for pid in [supervisor, *children(supervisor)]}
    return sum(parts.values()), parts


def worker_versions(admin: str) -> dict[int, str]:
    """pid -> version of every worker `/admin/status` lists."""
    with urllib.request.urlopen(f"http://{admin}/admin/status", timeout=30) as reply:
        status = json.loads(reply.read())
    return {int(entry["pid"]): str(entry["version"]) for entry in status["workers"] or []}


def wait_for(admin: str, workers: int, old: set[str], seconds: float = 600) -> str:
    """The one version all `workers` serve once none serves a version in `old`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            listed = worker_versions(admin)
        except OSError:
            listed = {}
        versions = set(listed.values())
        if len(listed) == workers and len(versions) == 1 and not versions & old:
            return versions.pop()
        time.sleep(0.25)
    raise SystemExit("the workers did not converge")


class Clients:
    """Client threads, one per target, that run while `stop` is not set: started on entering,
    stopped and joined (30 s each at most) on leaving."""

    def __init__(self, targets: Iterable[Callable[[], None]]) -> None:
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=target) for target in targets]

    def __enter__(self) -> Self:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)


class Load(Clients):
    """`--load`: two client threads asking decisions during the reloads, one opening a new
    connection per request, one keeping one connection alive (reopened after a failure), as
    a proxy's upstream keep-alive would. Counts answers and failures by kind."""

    def __init__(self, public: int) -> None:
        super().__init__(functools.partial(self.run, keep) for keep in (False, True))
        self.public = public
        self.answered = {"new": 0, "keep-alive": 0}
        self.failed: dict[str, int] = {}

    def run(self, keep: bool) -> None:
        kind = "keep-alive" if keep else "new"
        connection: http.client.HTTPConnection | None = None
        while not self.stop.is_set():
            try:
                if connection is None or not keep:
                    connection = http.client.HTTPConnection("127.0.0.1", self.public, timeout=10)
                connection.request("GET", "/_intercept/authz/search?q=plain+words")
                reply = connection.getresponse()
                reply.read()
                if reply.status != 200:
                    raise ValueError(f"status {reply.status}")
                self.answered[kind] += 1
            except (OSError, ValueError, http.client.HTTPException) as error:
                name = f"{kind}: {type(error).__name__}"
                self.failed[name] = self.failed.get(name, 0) + 1
                connection = None
            if not keep and connection is not None:
                connection.close()

    def __exit__(self, *_: object) -> None:
        super().__exit__()
        print(f"load during the reloads: answered {self.answered}, failed {self.failed or 0}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rules", type=int, default=50_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--reloads", type=int, default=3)
    parser.add_argument("--load", action="store_true", help="ask decisions meanwhile")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="intercept-memory-") as temporary:
        folder = Path(temporary)
        write_rules(folder, options.rules, 0)
        public, admin_port = _free_port(), _free_port()
        admin = f"127.0.0.1:{admin_port}"
        environment = {
            **{k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"},
            "INTERCEPT_WARN__SECRET": "a-benchmark-secret-of-enough-length",
            "INTERCEPT_LEDGER__URL": "null",
            "INTERCEPT_RELOAD__WATCH": "false",
            "PYTHONPATH": str(ROOT),
        }
        command = [sys.executable, "-m", "intercept", "serve", "--mode", "authz",
                   "--workers", str(options.workers), "--listen", f"127.0.0.1:{public}",
                   "--admin-listen", admin, "--rules", str(folder),
                   "--messages", str(ROOT / "messages")]  # fmt: skip
        proc = subprocess.Popen(command, cwd=ROOT, env=environment, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True)  # fmt: skip
        try:
            assert proc.stdout is not None
            proc.stdout.readline()
            version = wait_for(admin, options.workers, set())
            time.sleep(3)
            start, parts = total_mib(proc.pid)
            print(f"start: total PSS {start} MiB {parts}", flush=True)
            last = start
            load = Load(public) if options.load else contextlib.nullcontext()
            with load:
                last = reloads(proc, admin, folder, options, version, start)
            print(f"after {options.reloads} reloads / start: {last / start:.2f}x")
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)


def reloads(
    proc: subprocess.Popen[str],
    admin: str,
    folder: Path,
    options: argparse.Namespace,
    version: str,
    start: int,
) -> int:
    """SIGHUP after each edit, wait for every worker on the new set, measure; the last total."""
    last = start
    for number in range(1, options.reloads + 1):
        write_rules(folder, options.rules, number)
        began = time.monotonic()
        proc.send_signal(signal.SIGHUP)
        version = wait_for(admin, options.workers, {version})
        took = time.monotonic() - began
        time.sleep(5)
        last, parts = total_mib(proc.pid)
        print(f"after reload {number} ({took:.1f}s): total PSS {last} MiB {parts}",
              flush=True)  # fmt: skip
    return last


if __name__ == "__main__":
    main()
