"""`intercept.research.metricfiles`: an ended worker's metric files are merged, not left to pile up.

Real prometheus_client multiprocess files, written by real processes (one per "worker"),
read back with the collector `/metrics` uses."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from intercept.research import metricfiles

WORKER = """
import sys
from prometheus_client import Counter, Gauge, Histogram
Counter("demo_things", "things", ["kind"]).labels("a").inc(int(sys.argv[1]))
Histogram("demo_seconds", "time", buckets=(0.1, 1.0)).observe(float(sys.argv[2]))
Gauge("demo_info", "info", ["version"], multiprocess_mode="mostrecent").labels(sys.argv[3]).set(1)
print(__import__("os").getpid())
"""


def _worker(folder: Path, count: int, seconds: float, version: str) -> int:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(folder)}
    done = subprocess.run([sys.executable, "-c", WORKER, str(count), str(seconds), version],
                          env=env, capture_output=True, text=True, check=True)  # fmt: skip
    return int(done.stdout)


def _samples(folder: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(folder))  # type: ignore[no-untyped-call]
    with metricfiles.reading():
        text = generate_latest(registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    return tmp_path


def test_an_ended_workers_counts_stay_in_the_sums_and_its_files_go(folder: Path) -> None:
    first = _worker(folder, 3, 0.05, "v1")
    second = _worker(folder, 4, 0.5, "v1")
    before = _samples(folder)
    assert before[("demo_things_total", (("kind", "a"),))] == 7
    files = len(list(folder.glob("*.db")))

    assert metricfiles.retire(first) == 3  # counter, histogram, gauge
    assert metricfiles.retire(second) == 3
    assert metricfiles.retire(second) == 0  # nothing left of it
    assert sorted(path.name for path in folder.glob("*.db")) == [
        "counter_retired.db",
        "histogram_retired.db",
    ]
    assert files == 6
    after = _samples(folder)
    summed = {key: value for key, value in before.items() if not key[0].startswith("demo_info")}
    assert {key: after[key] for key in summed} == summed  # counters and buckets, unchanged
    assert after[("demo_seconds_bucket", (("le", "0.1"),))] == 1
    assert after[("demo_seconds_count", ())] == 2
    assert not any(key[0] == "demo_info" for key in after)  # its gauges went with it


def test_many_retired_workers_leave_two_files_and_exact_totals(folder: Path) -> None:
    for number in range(1, 21):
        metricfiles.retire(_worker(folder, number, 2.0, f"v{number}"))
    assert len(list(folder.glob("*.db"))) == 2
    assert _samples(folder)[("demo_things_total", (("kind", "a"),))] == sum(range(1, 21))


def test_a_reader_never_sees_a_retired_workers_counts_twice_or_not_at_all(folder: Path) -> None:
    pids = [_worker(folder, 1, 0.05, "v1") for _ in range(12)]
    seen: list[float] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            seen.append(_samples(folder)[("demo_things_total", (("kind", "a"),))])

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for pid in pids:
            metricfiles.retire(pid)
    finally:
        done.set()
        reader.join(timeout=30)
    assert seen
    assert set(seen) == {12.0}


def test_outside_multiprocess_mode_nothing_happens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    assert metricfiles.retire(os.getpid()) == 0
    with metricfiles.reading():
        pass
