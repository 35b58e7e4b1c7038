"""Rule sets compiled away from the serving process, and the compiled cache in use.

A reload reads, validates (schema, then every rule's examples) and compiles the rules in a
child process (`compile_in_child`: a fresh interpreter, `python -m intercept.compiling`,
niced, killed if its parent dies, bounded by `COMPILE_SECONDS`); rule files of at most
`IN_THREAD_BYTES` compile in the calling thread instead, in less time than a child takes
to start. The child stores the compiled set in the compiled cache
(`intercept.rules.compiled`) under the digest of the files it read, or, with the cache off
or when the files changed while it read them, in a private temporary folder; the parent
then only loads that entry (`Compiled.load`): a pickle, no parsing, no validation, no
automaton to build. An entry of the same files already in the cache is not compiled again.

A start reads the cache first (`cached_rules`); on a miss it compiles in process as before,
and once serving, a forked child stores the set (`store_in_background`), so the next start
of the same files is warm. Entries are only stored for sets whose examples pass.

The cache folder (`rules_cache`): a folder named in the configuration, or with `auto` (the
default) systemd's `$CACHE_DIRECTORY`, else `$XDG_CACHE_HOME/intercept`, else
`~/.cache/intercept`; `off` turns it off. A folder that cannot be used is said once and the
cache is off (`cache_for`); a start never fails for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import hashlib
import json
import logging
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import TypeVar

import ahocorasick

from intercept import __version__, load_rules
from intercept.config import Config
from intercept.errors import InterceptError, Problem, RuleError
from intercept.pages import Pages, pages_for
from intercept.rules.compiled import CacheError, CompiledCache, source_digest, source_files
from intercept.rules.ruleset import RuleSet

__all__ = ["COMPILE_SECONDS", "CompileRefused", "Compiled", "cache_for", "cached_rules",
           "checked_rules", "compile_in_child", "compile_with_pages", "digest_of",
           "example_problems", "in_daemon_thread", "store_in_background"]  # fmt: skip

COMPILE_SECONDS = 600.0  # the longest a compile child may take (100,000 rules: about 20 s)
IN_THREAD_BYTES = 64 * 1024  # rule files up to this size (about 1,000 rules) compile in a
# thread of the calling process, in tens of milliseconds: less than a child takes to start
_NICE = 10  # a reload's compile yields the CPU to the serving processes
_LOG = logging.getLogger("intercept.reload")
_T = TypeVar("_T")
_SAID: set[str] = set()  # cache folders already said to be unusable


def _salt() -> str:
    try:
        matcher = metadata.version("pyahocorasick")
    except metadata.PackageNotFoundError:
        matcher = ahocorasick.__file__ or "?"
    python = ".".join(map(str, sys.version_info[:2]))
    return f"intercept {__version__} {_engine_source()} python {python} pyahocorasick {matcher}"


def _engine_source() -> str:
    """A digest of the rule engine's source (`intercept/rules/*.py`): a build that changes
    how sets are compiled or pickled never reads another build's entries, whatever its
    version number says."""
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).resolve().parent.joinpath("rules").glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def digest_of(rules: Path, key_file: Path | None) -> str:
    """The digest rule files `rules` (and a bundle's key file) are cached under."""
    return source_digest([rules, *([key_file] if key_file is not None else [])], _salt())


def _today() -> str:
    return datetime.now(UTC).date().isoformat()


def _default_folder() -> Path | None:
    systemd = os.environ.get("CACHE_DIRECTORY")
    if systemd:
        return Path(systemd.split(":")[0]) / "compiled"
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / "intercept"
    home = os.environ.get("HOME")
    if home and home != "/" and Path(home).is_dir():
        return Path(home) / ".cache" / "intercept"
    return None


def cache_for(config: Config) -> CompiledCache | None:
    """The compiled cache the configuration names (see the module docstring), or None."""
    setting = config.rules_cache
    if setting == "off":
        return None
    folder = _default_folder() if setting == "auto" else Path(setting)
    if folder is None:
        return None
    cache = CompiledCache(folder)
    try:
        cache.check()
    except (OSError, CacheError) as error:
        if str(folder) not in _SAID:
            _SAID.add(str(folder))
            _LOG.warning("compiled rule cache off: %s (%s)", folder, _reason(error))
        return None
    return cache


def _reason(error: Exception) -> str:
    return str(error) if isinstance(error, CacheError) else type(error).__name__


def example_problems(rules: RuleSet) -> list[Problem]:
    """Every rule example that does not do what it says; named by rule and position only."""
    problems = []
    for spec in rules.rules:
        for number, query in enumerate(spec.examples_match, 1):
            if spec.id not in {m.rule_id for m in rules.match_all(query)}:
                message = f"examples.match #{number} does not match"
                problems.append(Problem(spec.file, spec.line, spec.id, message))
        for number, query in enumerate(spec.examples_no_match, 1):
            if spec.id in {m.rule_id for m in rules.match_all(query)}:
                message = f"examples.no_match #{number} matches"
                problems.append(Problem(spec.file, spec.line, spec.id, message))
    return problems


def checked_rules(path: Path, key_file: Path | None) -> RuleSet:
    """The rules at `path`, validated and compiled with every example passing. Raises
    `RuleError`."""
    rules = load_rules(path, key_file=key_file)
    problems = example_problems(rules)
    if problems:
        raise RuleError(problems)
    return rules


def cached_rules(config: Config) -> tuple[RuleSet | None, str | None]:
    """The compiled set of the configured files from the cache, if there; and the digest it
    is (or would be) stored under, None when the cache is off or the files unreadable."""
    cache = None if config.rules_key_file is not None else cache_for(config)  # see `_small`
    if cache is None:
        return None, None
    try:
        digest = digest_of(config.rules, config.rules_key_file)
        rules = cache.get(digest, _today())
    except OSError:
        return None, None  # the load that follows says what is wrong with the files
    except CacheError as error:
        _LOG.warning("compiled rule cache not read: %s", error)
        return None, None
    return (rules if isinstance(rules, RuleSet) else None), digest


def store_in_background(config: Config, rules: RuleSet, digest: str | None) -> int | None:
    """Store `rules` (compiled from the files of `digest`) in the cache from a forked
    process, which shares the set with this one; a set whose examples fail is not stored,
    nor one whose files changed since `digest` was taken. Pickling touches every object, so
    for its second or two the pages it touches are copied: about the set's size again. It
    is forked twice (the first child exits at once and is reaped here), so it is nobody's
    worker: init, tini or systemd reaps it; it closes the listeners it inherited. Returns
    the first child's pid, or None when there is nothing to do."""
    cache = cache_for(config)
    if cache is None or digest is None:
        return None
    try:
        pid = os.fork()
    except OSError as error:  # no memory or process left for it: the next start compiles
        _LOG.warning("compiled rule cache: not stored (%s)", type(error).__name__)
        return None
    if pid == 0:  # pragma: no cover - the forked children; their effect is tested
        code = 1
        try:
            if os.fork() == 0:
                os.closerange(3, resource.getrlimit(resource.RLIMIT_NOFILE)[0])  # listeners
                os.nice(_NICE)
                unchanged = digest_of(config.rules, config.rules_key_file) == digest
                if unchanged and not example_problems(rules):  # files edited while loaded:
                    cache.put(digest, rules, (spec.expires for spec in rules.rules))  # no
            code = 0
        finally:
            os._exit(code)
    os.waitpid(pid, 0)
    return pid


class CompileRefused(InterceptError):
    """A compile child refused the rule set; `problems` say why (never rule text)."""

    def __init__(self, problems: tuple[str, ...]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class Compiled:
    """What a compile child did: the problems of a refused set, or where the set is."""

    problems: tuple[str, ...] = ()
    digest: str = ""
    folder: Path | None = None
    temporary: bool = False  # `folder` is the child's own, removed once loaded
    rules: RuleSet | None = None  # a small set, compiled in the calling thread

    def discard(self) -> None:
        """Remove the child's folder when the set will not be loaded (a reload refused for
        its pages, or stopped): it holds the whole compiled set."""
        if self.temporary and self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)

    def load(self) -> RuleSet:
        """The compiled set, loaded with the collector paused (it would walk the new set's
        million objects again and again while they are made). Raises `CompileRefused` for
        a refused set, another `InterceptError` for an entry that cannot be read."""
        if self.rules is not None:
            return self.rules
        if self.problems or self.folder is None:
            raise CompileRefused(self.problems or ("no compiled rule set",))
        enabled = gc.isenabled()
        gc.disable()
        try:
            rules = CompiledCache(self.folder).get(self.digest, "0000-00-00")
        except (OSError, CacheError) as error:
            raise InterceptError(f"the compiled rule set could not be read: {error}") from None
        finally:
            if enabled:
                gc.enable()
            if self.temporary:
                shutil.rmtree(self.folder, ignore_errors=True)
        if not isinstance(rules, RuleSet):
            raise InterceptError("the compiled rule set could not be read")
        return rules


def _small(config: Config) -> bool:
    """Whether the rule files are small enough to compile in the calling thread; a sealed
    bundle always is (it is never cached: an entry would hold its key beside its hashes)."""
    if config.rules_key_file is not None:
        return True
    total = 0
    for path in source_files(config.rules):
        with contextlib.suppress(OSError):
            total += path.stat().st_size
    return total <= IN_THREAD_BYTES


def compile_in_child(config: Config) -> Compiled:
    """Read, validate and compile the configured rules in a child process (see the module
    docstring); blocks, so call it in a thread. Rule files of at most `IN_THREAD_BYTES`
    are compiled in the calling thread instead: a child's start would cost more than they
    do. Never raises for a bad set: the problems say what was wrong (file, line, rule id;
    never rule text)."""
    if _small(config):
        try:
            return Compiled(rules=checked_rules(config.rules, config.rules_key_file))
        except InterceptError as error:
            problems = error.problems if isinstance(error, RuleError) else (error,)
            return Compiled(tuple(str(problem) for problem in problems))
    cache = cache_for(config)
    try:  # beside the entries (see `_handed`), or where temporary files go
        private = Path(tempfile.mkdtemp(prefix=".compile-", dir=cache.folder if cache else None))
    except OSError:
        private = Path(tempfile.mkdtemp(prefix=".compile-"))
    job = {
        "rules": str(config.rules),
        "key_file": None if config.rules_key_file is None else str(config.rules_key_file),
        "cache": None if cache is None else str(cache.folder),
        "private": str(private),
    }
    source = str(Path(__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (source, env.get("PYTHONPATH"))))
    try:
        done = subprocess.run(
            [sys.executable, "-P", "-m", "intercept.compiling"],  # -P: not the cwd
            input=json.dumps(job).encode(),
            capture_output=True,
            timeout=COMPILE_SECONDS,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired:
        shutil.rmtree(private, ignore_errors=True)
        return Compiled((f"compiling the rules took longer than {COMPILE_SECONDS:.0f}s",))
    except OSError as error:
        shutil.rmtree(private, ignore_errors=True)
        return Compiled((f"the compile process could not start ({type(error).__name__})",))
    try:
        result = json.loads(done.stdout.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        result = None
    if done.returncode != 0 or not isinstance(result, dict):
        shutil.rmtree(private, ignore_errors=True)
        reason = f"exit status {done.returncode}"
        return Compiled((f"unexpected failure while compiling the rules ({reason})",))
    if result.get("problems"):
        shutil.rmtree(private, ignore_errors=True)
        return Compiled(tuple(str(problem) for problem in result["problems"]))
    temporary = cache is None or result["folder"] != str(cache.folder)
    if result["folder"] != str(private):
        shutil.rmtree(private, ignore_errors=True)
    return Compiled((), str(result["digest"]), Path(result["folder"]), temporary)


def _die_with_parent() -> None:
    """Linux: the kernel kills this process when its parent ends (no orphaned compile)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _child() -> dict[str, object]:
    """The compile child's work: the job on stdin, the result returned (see
    `compile_in_child`)."""
    job = json.loads(sys.stdin.buffer.read())
    path, key_file = Path(job["rules"]), job["key_file"] and Path(job["key_file"])
    private = Path(job["private"])
    cache = None if job["cache"] is None else CompiledCache(Path(job["cache"]))
    before = digest_of(path, key_file)
    if cache is not None:
        with contextlib.suppress(CacheError, OSError):
            if cache.has(before, _today()) and _linked(cache, before, private):
                return {"digest": before, "folder": str(private)}  # already compiled
    try:
        rules = checked_rules(path, key_file)
    except InterceptError as error:
        problems = (
            [str(p) for p in error.problems] if isinstance(error, RuleError) else [str(error)]
        )
        return {"problems": problems}
    expiries = [spec.expires for spec in rules.rules]
    if cache is not None and digest_of(path, key_file) == before:
        try:
            cache.put(before, rules, expiries)
        except (CacheError, OSError):
            pass  # a full or read-only cache: handed over below
        else:
            if _linked(cache, before, private):
                return {"digest": before, "folder": str(private)}
    for folder in (private, None):  # changed meanwhile, no cache, or a cache that failed
        try:  # a full or read-only cache folder never refuses a good set
            place = Path(tempfile.mkdtemp(prefix=".compile-")) if folder is None else folder
            CompiledCache(place).put(before, rules, expiries)
            return {"digest": before, "folder": str(place)}
        except OSError:
            if folder is None:
                raise
    raise AssertionError("unreachable")


def _linked(cache: CompiledCache, digest: str, private: Path) -> bool:
    """Whether the cache's entry for `digest` is now also linked into the parent's `private`
    folder (made beside the entries, on the same file system), so that a prune by another
    server sharing the cache cannot remove it before the parent has loaded it."""
    try:
        os.link(cache.folder / f"{digest}.rules", private / f"{digest}.rules")
    except OSError:  # another file system, gone meanwhile, nothing stored
        return False
    return True


def main() -> None:
    """`python -m intercept.compiling`: the compile child (see `compile_in_child`)."""
    _die_with_parent()
    os.nice(_NICE)
    logging.disable(logging.CRITICAL)  # the parent says what happened; no rule text here
    try:
        result = _child()
    except Exception as error:  # reported by kind only: a message could quote a rule
        result = {"problems": [f"unexpected {type(error).__name__} while compiling"]}
    sys.stdout.write(json.dumps(result) + "\n")


async def compile_with_pages(config: Config) -> tuple[Compiled, Pages]:
    """The configured rules compiled (`compile_in_child`) and the pages loaded, each in a
    daemon thread; the child's folder is removed when the pages fail or the wait is
    cancelled (a stop), since the set will never be loaded then."""
    compiled = await in_daemon_thread(lambda: compile_in_child(config), abandoned=Compiled.discard)
    try:
        pages = await in_daemon_thread(lambda: pages_for(config), background=True)
    except BaseException:
        compiled.discard()
        raise
    return compiled, pages


async def in_daemon_thread(
    function: Callable[[], _T],
    *,
    background: bool = False,
    abandoned: Callable[[_T], None] | None = None,
) -> _T:
    """`function()` in a daemon thread: a stop that cancels the wait does not wait for it
    (an executor's thread would hold up the exit). Returns once the thread has finished.
    `background`: the thread runs niced (Linux takes a thread id for the priority of that
    thread alone), so the CPU goes to serving first. `abandoned(result)` runs when the
    result comes after the wait was cancelled (to remove what nobody will use)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[_T] = loop.create_future()

    def settle(result: _T | None, error: BaseException | None) -> None:
        if future.done():
            if abandoned is not None and error is None:
                abandoned(result)  # type: ignore[arg-type]
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def target() -> None:
        result: _T | None = None
        error: BaseException | None = None
        try:
            if background:
                with contextlib.suppress(OSError):
                    os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), _NICE)
            result = function()
        except BaseException as caught:
            error = caught
        try:
            loop.call_soon_threadsafe(settle, result, error)
        except RuntimeError:  # the loop closed: nobody waits any more
            if abandoned is not None and error is None:
                abandoned(result)  # type: ignore[arg-type]

    thread = threading.Thread(target=target, name="intercept-load", daemon=True)
    thread.start()
    try:
        return await future
    finally:
        if not future.cancelled():  # it is returning: joined so that no fork sees it alive
            thread.join()


if __name__ == "__main__":
    main()
