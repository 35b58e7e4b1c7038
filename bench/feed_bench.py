"""Feed convergence: how long after `intercept feed publish` two replicas serve the new set.

Usage: python bench/feed_bench.py [--rules 100000] [--rounds 3] [--poll 30]

A signing key, a rule set of N synthetic rules (everyday words) plus one marker rule published
to a folder served by `python -m http.server` on loopback, and two replicas polling it
(`rules_feed`, each with its own feed cache and compiled cache, as on two hosts): one process,
and a supervisor with 2 workers. Each round publishes a set with a new marker rule and
measures the seconds from the end of the publish until both replicas block the marker (asked
every 50 ms); the publish itself (validation included) is timed apart. The expected value is
about the poll interval (jittered by +-20%) plus a reload.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.proxy_bench import _free_port  # noqa: E402
from bench.worker_memory import HEAD, rule_lines  # noqa: E402


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as reply:
            return int(reply.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except OSError:
        return 0


def _intercept(*args: str) -> list[str]:
    return [sys.executable, "-m", "intercept", *args]


def publish(folder: Path, rules: int, extra: int) -> float:
    """Seconds `intercept feed publish` took for `rules` rules and `extra` marker rules."""
    source = folder / "rules"
    source.mkdir(exist_ok=True)
    (source / "big.yaml").write_text("\n".join([*HEAD, *rule_lines(rules, extra)]) + "\n")
    started = time.monotonic()
    key = str(folder / "keys" / "feed.key")
    command = _intercept("feed", "publish", str(source), "--key", key, "-o", str(folder / "out"))
    subprocess.run(command, check=True, capture_output=True, cwd=ROOT)
    return time.monotonic() - started


def replica(folder: Path, name: str, feed: str, poll: float, workers: int) -> tuple[str, list[str]]:
    """The public address and command of a replica named `name` polling `feed`."""
    public, admin = _free_port(), _free_port()
    config = {
        "mode": "authz",
        "rules_cache": str(folder / f"compiled-{name}"),
        "rules_feed": {"url": feed, "public_key_file": str(folder / "keys" / "feed.pub"),
                       "poll_seconds": poll, "cache_dir": str(folder / f"feed-{name}")},
    }  # fmt: skip
    (folder / f"{name}.yaml").write_text(json.dumps(config))
    command = _intercept("serve", "--config", str(folder / f"{name}.yaml"),
                         "--listen", f"127.0.0.1:{public}", "--admin-listen",
                         f"127.0.0.1:{admin}")  # fmt: skip
    return f"http://127.0.0.1:{public}", command + (["--workers", str(workers)] if workers else [])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rules", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--poll", type=float, default=30.0, help="rules_feed.poll_seconds")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="intercept-feed-") as temporary:
        folder = Path(temporary)
        keygen = _intercept("feed", "keygen", str(folder / "keys"))
        subprocess.run(keygen, check=True, capture_output=True, cwd=ROOT)
        took = publish(folder, options.rules, 1)
        print(f"publish v1 ({options.rules} rules): {took:.1f} s, validation included")
        port = _free_port()
        static = subprocess.Popen(
            [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port),
             "--directory", str(folder / "out")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        environment = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
        environment |= {"INTERCEPT_LEDGER__URL": "null", "INTERCEPT_WARN__SECRET": "x" * 20,
                        "PYTHONPATH": str(ROOT)}  # fmt: skip
        feed = f"http://127.0.0.1:{port}/"
        replicas = [replica(folder, "one", feed, options.poll, 0),
                    replica(folder, "two", feed, options.poll, 2)]  # fmt: skip
        procs = [
            subprocess.Popen(command, env=environment, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True, cwd=ROOT)
            for _, command in replicas
        ]  # fmt: skip
        try:
            for proc in procs:
                assert proc.stdout is not None
                proc.stdout.readline()  # serving
            for extra in range(2, 2 + options.rounds):
                marker = f"zzextra{extra - 1}+phrase"
                took = publish(folder, options.rules, extra)
                started = time.monotonic()
                done: dict[str, float] = {}
                while len(done) < len(replicas) and time.monotonic() - started < 900:
                    for public, _ in replicas:
                        url = f"{public}/_intercept/authz/search?q={marker}"
                        if public not in done and _status(url) == 403:
                            done[public] = time.monotonic() - started
                    time.sleep(0.05)
                one, two = (done.get(public, float("nan")) for public, _ in replicas)
                print(f"round {extra - 1}: publish {took:.1f} s; both replicas serve the new "
                      f"set {max(one, two):.1f} s after it (one process {one:.1f} s, --workers "
                      f"2 {two:.1f} s; poll {options.poll:g} s +-20%)", flush=True)  # fmt: skip
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(60)
                if proc.stdout is not None:
                    proc.stdout.close()
            static.terminate()
            static.wait(10)


if __name__ == "__main__":
    main()
