"""The compiled cache on disk (intercept.rules.compiled): keyed by what the set was compiled
from, valid until its first expiry day, and never read from a folder others may write."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from intercept.rules.compiled import KEEP, CacheError, CompiledCache, source_digest
from intercept.rules.ruleset import RuleSet, compile_rules
from tests.conftest import spec


def _rules() -> RuleSet:
    return compile_rules([spec("R1", "blue kettle"), spec("R2", "green lamp", action="warn")])


def test_an_entry_decides_like_the_set_it_was_made_from(tmp_path: Path) -> None:
    cache, rules = CompiledCache(tmp_path / "cache"), _rules()
    cache.put("a" * 64, rules, [None, None])
    loaded = cache.get("a" * 64, "2026-12-08")
    assert isinstance(loaded, RuleSet)
    assert loaded.version == rules.version
    for query in ("blue kettle", "b1ue  kett1e", "green lamps", "nothing here"):
        assert loaded.match(query) == rules.match(query)
    assert oct((tmp_path / "cache").stat().st_mode & 0o777) == "0o700"
    assert [oct(p.stat().st_mode & 0o777) for p in (tmp_path / "cache").iterdir()] == ["0o600"]


def test_the_digest_follows_content_names_and_salt(tmp_path: Path) -> None:
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "a.yaml").write_text("one")
    first = source_digest([folder], "v1")
    assert source_digest([folder], "v1") == first
    assert source_digest([folder], "v2") != first  # another build of Intercept
    (folder / "a.yaml").write_text("two")
    assert source_digest([folder], "v1") != first
    (folder / "a.yaml").rename(folder / "b.yaml")
    renamed = source_digest([folder], "v1")
    (folder / ".editor.swp").write_text("ignored")  # dot files are not rule files
    assert source_digest([folder], "v1") == renamed


def test_an_entry_ends_on_its_first_expiry_day(tmp_path: Path) -> None:
    cache = CompiledCache(tmp_path)
    cache.put("b" * 64, _rules(), [None, "2026-12-10", "2027-01-01"])
    assert cache.get("b" * 64, "2026-12-09") is not None
    assert cache.get("b" * 64, "2026-12-10") is None  # that day a rule stops matching


def test_a_damaged_entry_is_a_miss_and_goes(tmp_path: Path) -> None:
    cache = CompiledCache(tmp_path)
    path = cache.put("c" * 64, _rules(), [])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # truncated
    assert cache.get("c" * 64, "2026-12-08") is None
    assert not path.exists()
    cache.put("c" * 64, _rules(), [])
    path.rename(tmp_path / f"{'d' * 64}.rules")  # an entry under another digest's name
    assert cache.get("d" * 64, "2026-12-08") is None


def test_an_entry_with_a_header_of_another_shape_is_a_miss(tmp_path: Path) -> None:
    cache = CompiledCache(tmp_path)
    path = cache.put("g" * 64, _rules(), [])
    assert cache.has("g" * 64, "2026-12-08")
    magic, _, rest = path.read_bytes().partition(b"\n")
    path.write_bytes(magic + b'\n{"digest": "' + b"g" * 64 + b'"}\n' + rest.partition(b"\n")[2])
    assert not cache.has("g" * 64, "2026-12-08")  # no version, no valid_until: not ours
    assert not path.exists()


def test_a_folder_others_may_write_is_never_read(tmp_path: Path) -> None:
    cache = CompiledCache(tmp_path / "cache")
    cache.put("e" * 64, _rules(), [])
    (tmp_path / "cache").chmod(0o777)
    with pytest.raises(CacheError, match="may be written by others"):
        cache.get("e" * 64, "2026-12-08")


def test_an_entry_others_may_write_is_never_read(tmp_path: Path) -> None:
    cache = CompiledCache(tmp_path / "cache")
    path = cache.put("f" * 64, _rules(), [])
    path.chmod(0o666)
    with pytest.raises(CacheError, match="may be written by others"):
        cache.get("f" * 64, "2026-12-08")
    (tmp_path / "cache").chmod(0o757)
    path.chmod(0o600)
    with pytest.raises(CacheError, match="may be written by others"):
        cache.get("f" * 64, "2026-12-08")


def test_only_the_newest_entries_are_kept(tmp_path: Path) -> None:
    cache = CompiledCache(tmp_path)
    for number in range(KEEP + 2):
        path = cache.put(f"{number:064d}", _rules(), [])
        os.utime(path, ns=(number * 10**9, number * 10**9))
    kept = sorted(path.name for path in tmp_path.glob("*.rules"))
    assert kept == [f"{number:064d}.rules" for number in range(2, KEEP + 2)]
