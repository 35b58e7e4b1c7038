"""Rule sets compiled in a child process and the compiled cache in use (intercept.compiling):
what a reload and a start get, what a refused set says, and that no rule text leaves the
child."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Literal

import pytest

from intercept.assembly import build_engine
from intercept.compiling import (
    CompileRefused,
    cache_for,
    cached_rules,
    compile_in_child,
    digest_of,
    store_in_background,
)
from intercept.config import Config

SECRET_WORD = "zanzibarquokka"  # stands for confidential rule text: never in any output


def _rules_file(folder: Path, *, bad: bool = False, pad: int = 70_000) -> Path:
    """A rule file over the in-thread size (a comment pads it), so it compiles in a child."""
    folder.mkdir(exist_ok=True)
    example = "nothing at all" if bad else f"a {SECRET_WORD} here"
    text = (
        "list: {name: t, source: test, updated: 2026-12-08}\n"
        "defaults: {category: demo, action: block, language: en}\n"
        "rules:\n"
        f'  - id: T-1\n    terms: ["{SECRET_WORD}"]\n'
        f'    examples: {{match: ["{example}"]}}\n'
        '  - id: T-2\n    terms: ["blue kettle"]\n'
        f"# {'x' * pad}\n"
    )
    (folder / "t.yaml").write_text(text, encoding="utf-8")
    return folder


def _config(tmp_path: Path, rules: Path, cache: Literal["auto", "off"] | Path = "auto") -> Config:
    return Config(rules=rules, rules_cache=cache)


def test_a_child_compiles_the_set_and_the_parent_only_loads_it(tmp_path: Path) -> None:
    config = _config(tmp_path, _rules_file(tmp_path / "rules"), tmp_path / "cache")
    compiled = compile_in_child(config)
    assert compiled.problems == ()
    # handed over through a link in a folder of its own beside the cache's entries, so a
    # prune by another server sharing the cache cannot take it away before it is loaded
    assert compiled.folder is not None
    assert compiled.folder.parent == tmp_path / "cache"
    assert compiled.temporary
    rules = compiled.load()
    assert not compiled.folder.exists()
    assert rules.match(f"some {SECRET_WORD}") is not None
    assert rules.match("a blue kettle").rule_id == "T-2"  # type: ignore[union-attr]
    entry = tmp_path / "cache" / f"{digest_of(config.rules, None)}.rules"
    assert entry.exists()
    before = entry.stat().st_mtime_ns
    again = compile_in_child(config)  # the same files: the entry is reused, not rewritten
    assert again.load().version == rules.version
    assert entry.stat().st_mtime_ns == before


def test_an_entry_pruned_before_the_parent_loads_it_still_loads(tmp_path: Path) -> None:
    config = _config(tmp_path, _rules_file(tmp_path / "rules"), tmp_path / "cache")
    compiled = compile_in_child(config)
    for entry in (tmp_path / "cache").glob("*.rules"):
        entry.unlink()  # another server sharing the cache pruned it meanwhile
    assert compiled.load().match(f"a {SECRET_WORD}") is not None


def test_a_refused_set_names_rule_and_place_never_its_text(tmp_path: Path) -> None:
    config = _config(tmp_path, _rules_file(tmp_path / "rules", bad=True), tmp_path / "cache")
    compiled = compile_in_child(config)
    assert len(compiled.problems) == 1
    assert "T-1" in compiled.problems[0]
    assert "examples.match #1 does not match" in compiled.problems[0]
    assert SECRET_WORD not in compiled.problems[0]
    assert not list((tmp_path / "cache").glob("*.rules"))  # a refused set is not stored
    with pytest.raises(CompileRefused):
        compiled.load()


def test_a_broken_file_is_refused_by_the_child_with_file_and_line(tmp_path: Path) -> None:
    folder = _rules_file(tmp_path / "rules")
    text = (folder / "t.yaml").read_text()
    (folder / "t.yaml").write_text(text.replace("id: T-2", "id: T-2\n    action: explode"))
    compiled = compile_in_child(_config(tmp_path, folder, "off"))
    assert compiled.problems
    assert "t.yaml" in compiled.problems[0]
    assert all(SECRET_WORD not in problem for problem in compiled.problems)


def test_with_the_cache_off_the_entry_is_private_and_removed_once_loaded(
    tmp_path: Path,
) -> None:
    compiled = compile_in_child(_config(tmp_path, _rules_file(tmp_path / "rules"), "off"))
    assert compiled.temporary
    assert compiled.folder is not None
    folder = compiled.folder
    assert oct(folder.stat().st_mode & 0o777) == "0o700"
    compiled.load()
    assert not folder.exists()


def test_small_files_compile_in_the_calling_thread(tmp_path: Path) -> None:
    config = _config(tmp_path, _rules_file(tmp_path / "rules", pad=10), tmp_path / "cache")
    compiled = compile_in_child(config)
    assert compiled.rules is not None
    assert compiled.folder is None
    assert compiled.load().match(SECRET_WORD) is not None
    bad = _config(tmp_path, _rules_file(tmp_path / "bad", bad=True, pad=10), "off")
    assert "T-1" in compile_in_child(bad).problems[0]


def test_a_start_stores_the_set_and_the_next_start_reads_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = _config(tmp_path, _rules_file(tmp_path / "rules", pad=10), tmp_path / "cache")
    assert cached_rules(config)[0] is None
    caplog.set_level(logging.INFO, logger="intercept")
    first = build_engine(config, cache=True)  # a miss: compiled here, stored by a child
    deadline = time.monotonic() + 30
    while cached_rules(config)[0] is None and time.monotonic() < deadline:
        time.sleep(0.05)
    second = build_engine(config, cache=True)
    assert second.rules.version == first.rules.version
    assert "from the compiled cache" in caplog.text
    assert SECRET_WORD not in caplog.text
    (config.rules / "t.yaml").write_text(
        (config.rules / "t.yaml").read_text().replace("blue kettle", "red kettle")
    )
    assert cached_rules(config)[0] is None  # other files, another digest


def test_an_unusable_cache_folder_is_said_once_and_the_cache_is_off(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "shared"
    folder.mkdir(mode=0o777)
    folder.chmod(0o777)
    config = _config(tmp_path, _rules_file(tmp_path / "rules", pad=10), folder)
    with caplog.at_level(logging.WARNING, logger="intercept.reload"):
        assert cache_for(config) is None
        assert cache_for(config) is None
    said = [r.getMessage() for r in caplog.records if "cache off" in r.getMessage()]
    assert len(said) == 1
    assert "may be written by others" in said[0]
    engine = build_engine(config, cache=True)  # a start never fails for it
    assert engine.rules.match("blue kettle") is not None


def test_auto_follows_systemd_then_xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = _config(tmp_path, tmp_path)
    monkeypatch.setenv("CACHE_DIRECTORY", str(tmp_path / "systemd"))
    found = cache_for(config)
    assert found is not None
    assert found.folder == tmp_path / "systemd" / "compiled"
    monkeypatch.delenv("CACHE_DIRECTORY")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    found = cache_for(config)
    assert found is not None
    assert found.folder == tmp_path / "xdg" / "intercept"
    assert cache_for(_config(tmp_path, tmp_path, "off")) is None


def _nice_and_state(pid: int) -> tuple[int, str] | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return int(fields[16]), fields[0]  # nice is field 19 of the whole line, state field 3


def test_the_child_is_niced_and_dies_with_its_parent() -> None:
    """A child of a parent killed without a word (SIGKILL: no handler, no cleanup) goes too."""
    parent = subprocess.Popen(
        [sys.executable, "-c",
         "import subprocess, sys, time\n"
         "child = subprocess.Popen([sys.executable, '-m', 'intercept.compiling'],"
         " stdin=subprocess.PIPE)\n"
         "print(child.pid, flush=True)\n"
         "time.sleep(60)\n"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        deadline = time.monotonic() + 20
        while (_nice_and_state(child) or (0, ""))[0] != 10 and time.monotonic() < deadline:
            time.sleep(0.05)  # the child lowers its priority first thing, before its job
        assert _nice_and_state(child) == (10, "S")  # waiting for its job on stdin
        parent.kill()
        parent.wait()
        while (_nice_and_state(child) or (0, "Z"))[1] != "Z" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (_nice_and_state(child) or (0, "Z"))[1] == "Z"  # killed (a zombie, or gone)
    finally:
        parent.kill()
        parent.wait()
        if parent.stdout is not None:
            parent.stdout.close()


def test_odd_files_beside_the_rules_neither_block_nor_fail_a_compile(tmp_path: Path) -> None:
    folder = _rules_file(tmp_path / "rules")
    os.mkfifo(folder / "pipe")  # reading it would block for ever
    (folder / "NOTES").symlink_to(tmp_path / "nowhere")  # a dangling link
    (folder / ".git").mkdir()
    (folder / ".git" / "index.lock").write_text("a pull in progress")
    config = _config(tmp_path, folder, tmp_path / "cache")
    assert cached_rules(config) == (None, digest_of(folder, None))  # did not block
    compiled = compile_in_child(config)
    assert compiled.problems == ()
    (folder / ".git" / "index.lock").unlink()  # a dot folder is not part of the rules
    assert digest_of(folder, None) == compiled.digest


def test_the_child_never_imports_a_module_from_the_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _rules_file(tmp_path / "rules")
    planted = tmp_path / "cwd"
    planted.mkdir()
    (planted / "yaml.py").write_text(f"open({str(tmp_path / 'ran')!r}, 'w').close()\n")
    monkeypatch.chdir(planted)
    compiled = compile_in_child(_config(tmp_path, folder, "off"))
    assert compiled.problems == ()
    assert not (tmp_path / "ran").exists()
    compiled.discard()
    assert compiled.folder is not None
    assert not compiled.folder.exists()


def test_a_start_never_stores_a_set_under_files_changed_since(tmp_path: Path) -> None:
    config = _config(tmp_path, _rules_file(tmp_path / "rules", pad=10), tmp_path / "cache")
    rules, digest = cached_rules(config)
    assert rules is None
    assert digest is not None
    engine = build_engine(config)  # compiled, not stored (cache=False)
    (config.rules / "t.yaml").write_text(
        (config.rules / "t.yaml").read_text().replace("blue kettle", "red kettle")
    )  # edited after the digest was taken and the set read
    assert store_in_background(config, engine.rules, digest) is not None
    time.sleep(2.0)  # the forked writer checks the files first and stores nothing
    assert not list((tmp_path / "cache").glob("*.rules"))
    (config.rules / "t.yaml").write_text(
        (config.rules / "t.yaml").read_text().replace("red kettle", "blue kettle")
    )  # the files the set was read from again: now it is stored (within those 2 s too)
    store_in_background(config, engine.rules, digest)
    deadline = time.monotonic() + 2.0
    while cached_rules(config)[0] is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert cached_rules(config)[0] is not None
