"""deploy/systemd/: the unit, its example configuration and environment file, as shipped.

- `systemd-analyze verify` has nothing to say about the unit, and `systemd-analyze security
  --offline=yes` rates its exposure 2.0 or lower (both from Debian's `systemd` package; neither
  needs systemd as PID 1, which it is not here).
- The example configuration and environment file are accepted by Intercept's own loader, and
  the ledger they name lies in the unit's StateDirectory.
- The unit's ExecStart, ExecReload and KillSignal, run as a plain process with only the paths
  and ports moved to a temporary folder and loopback: it serves, reloads on SIGHUP, and drains
  and exits 0 on SIGTERM within TimeoutStopSec.
- The unit, byte for byte, under a real systemd: `systemd-nspawn` (package `systemd-container`)
  boots this machine's own systemd in a throwaway container (`--volatile=yes`: an empty tmpfs
  root with the host's /usr read-only) that shares the host's network, so the service listens
  on loopback ports the test reaches; it boots only as far as the service (journald and
  Intercept are all that run in it). Every hardening setting is applied for real there:
  DynamicUser, the system call filter, MemoryDenyWriteExecute (CPython and the compiled
  dependencies run under it), ProtectSystem=strict with the ledger in the StateDirectory, and
  PrivateTmp for the workers' metrics files.

Cost: about 1 s for the analysis tests, 2 s for the plain process, 4 s for the container.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from ipaddress import ip_address
from pathlib import Path

import pytest

from intercept.config import load_config
from tests.deploy_helpers import DEPLOY, free_port, render
from tests.processes import http_status

SYSTEMD = DEPLOY / "systemd"
UNIT = SYSTEMD / "intercept.service"
CONFIG = SYSTEMD / "intercept.yaml"
ENV_FILE = SYSTEMD / "intercept.env"
ROOT = DEPLOY.parent

# Where the unit expects things (deploy/README.md, "systemd")
INSTALLED_COMMAND = "/opt/intercept/bin/intercept"
INSTALLED_CONFIG = "/etc/intercept/intercept.yaml"
INSTALLED_RULES = "/etc/intercept/rules"
STATE_DIRECTORY = Path("/var/lib/intercept")

WARN_SECRET = "a-warn-secret-for-this-test-only"
RELOAD_TOKEN = "a-reload-token-for-this-test-only"
BLOCKED = "/search?q=blocked+example"
NEW_PHRASE = "/search?q=copper+kettle"  # matched only once the rule added below is loaded

# A rule file added while the service runs; it counts only after a reload.
EXTRA_RULES = """\
list:
  name: reload-test
  source: "synthetic, written by tests/deploy/test_deploy_systemd.py"
  updated: 2026-12-01
defaults:
  category: demo
  action: block
  language: en
rules:
  - id: RELOAD-001
    terms: ["copper kettle"]
    examples:
      match: ["copper kettle"]
      no_match: ["copper"]
"""

STEP_TIMEOUT = 30.0  # seconds for anything to come up, reload or stop


def unit_settings(text: str) -> dict[str, dict[str, list[str]]]:
    """The unit's sections and their settings, every value of a repeated key in order (as
    systemd reads `SystemCallFilter=` twice). The shipped unit continues no line with `\\`."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        assert not line.endswith("\\"), f"a continued line: {line!r}"
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"a setting before any section: {line!r}"
        key, equals, value = line.partition("=")
        assert equals, f"not KEY=VALUE: {line!r}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


SERVICE = unit_settings(UNIT.read_text(encoding="utf-8"))["Service"]


def only(key: str) -> str:
    """The single value of the [Service] setting `key`."""
    values = SERVICE.get(key, [])
    assert len(values) == 1, f"{key}= is set {len(values)} times in {UNIT.name}"
    return values[0]


def environment_file(text: str) -> dict[str, str]:
    """NAME=value lines as systemd's EnvironmentFile= reads the shipped file (which uses
    neither quotes nor continuations); comment and blank lines skipped."""
    found = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        name, equals, value = line.partition("=")
        assert equals, f"not NAME=value: {line!r}"
        assert re.fullmatch(r"[A-Z_][A-Z0-9_]*", name), f"not a variable name: {line!r}"
        assert not value.startswith(("'", '"')), "the shipped file uses no quotes"
        found[name] = value
    return found


def systemd_analyze() -> str:
    found = shutil.which("systemd-analyze") or "/usr/bin/systemd-analyze"
    if not Path(found).exists():
        pytest.skip("systemd-analyze is missing: Debian package systemd (.ci/run installs it)")
    return found


def venv_command() -> Path:
    """The `intercept` console script of the environment running the tests: what
    /opt/intercept/bin/intercept is in a real installation."""
    script = Path(sys.executable).parent / "intercept"
    if not script.exists():
        pytest.skip(f"no console script {script}: install the package (pip install -e .)")
    return script


def analysable_unit(folder: Path) -> Path:
    """The shipped unit with only ExecStart's program replaced by the real console script.

    `systemd-analyze verify` checks that each Exec*= program exists and is executable on this
    machine, and /opt/intercept is the installation the unit assumes, not one this machine has.
    `--root=DIR` is no way around it: verify then loads every other unit (sysinit.target, ...)
    from DIR as well and looks for the programs there, so DIR would have to be a whole OS
    tree. Nothing else needs systemd as PID 1: verify and `security --offline=yes` load the
    unit into a manager of their own and talk to no running systemd."""
    unit = folder / "intercept.service"  # the name matters: it is the unit's name
    text = render(
        UNIT.read_text(encoding="utf-8"),
        {f"ExecStart={INSTALLED_COMMAND} ": f"ExecStart={venv_command()} "},
    )
    unit.write_text(text, encoding="utf-8")
    return unit


# --- the unit file ------------------------------------------------------------------------


def test_systemd_analyze_verify_prints_nothing(tmp_path: Path) -> None:
    unit = analysable_unit(tmp_path)
    result = subprocess.run(
        [systemd_analyze(), "verify", str(unit)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_systemd_analyze_security_rates_the_unit_2_or_lower(tmp_path: Path) -> None:
    unit = analysable_unit(tmp_path)
    result = subprocess.run(
        [systemd_analyze(), "security", "--offline=yes", "--no-pager", str(unit)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    found = re.search(r"Overall exposure level for intercept\.service: (\d+\.\d+)", result.stdout)
    assert found, result.stdout + result.stderr
    assert float(found.group(1)) <= 2.0, result.stdout
    # the same bound as systemd's own pass/fail (exit code), on its 0-100 scale
    threshold = subprocess.run(
        [systemd_analyze(), "security", "--offline=yes", "--threshold=20", str(unit)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert threshold.returncode == 0, threshold.stdout


def test_unit_settings_that_the_deployment_relies_on() -> None:
    argv = shlex.split(only("ExecStart"))
    assert argv == [INSTALLED_COMMAND, "serve", "--config", INSTALLED_CONFIG]
    assert only("ExecReload") == "/bin/kill -HUP $MAINPID"  # SIGHUP: reload rules and pages
    assert only("KillSignal") == "SIGTERM"  # SIGTERM: drain, write the last counts, exit 0
    # aiohttp gives requests in flight up to 60 s on a stop; the ledger is flushed after that
    assert int(only("TimeoutStopSec")) >= 65
    assert only("Restart") == "on-failure"
    assert only("RestartPreventExitStatus") == "2"  # a configuration that cannot start
    assert only("StateDirectory") == "intercept"
    assert only("WorkingDirectory") == str(STATE_DIRECTORY)
    assert only("EnvironmentFile") == "-/etc/intercept/intercept.env"
    assert only("DynamicUser") == "yes"
    for key in (
        "NoNewPrivileges", "PrivateTmp", "PrivateDevices", "ProtectHome", "ProtectKernelTunables",
        "ProtectKernelModules", "ProtectKernelLogs", "ProtectControlGroups", "ProtectClock",
        "RestrictNamespaces", "RestrictRealtime", "RestrictSUIDSGID", "LockPersonality",
        "MemoryDenyWriteExecute",
    ):  # fmt: skip
        assert only(key) == "yes", key
    assert only("ProtectSystem") == "strict"
    assert only("CapabilityBoundingSet") == ""
    assert only("RestrictAddressFamilies").split() == ["AF_INET", "AF_INET6", "AF_UNIX"]
    assert SERVICE["SystemCallFilter"][0] == "@system-service"
    assert only("SystemCallArchitectures") == "native"
    assert only("UMask") == "0077"
    assert int(only("LimitNOFILE")) >= 16384


# --- the example configuration and environment file -------------------------------------


def filled_environment() -> dict[str, str]:
    """The shipped environment file's two FILL IN lines (shipped commented out) filled in."""
    text = ENV_FILE.read_text(encoding="utf-8")
    assert environment_file(text) == {}  # nothing set as shipped: an empty value would be null
    for name in ("INTERCEPT_WARN__SECRET", "INTERCEPT_ADMIN__RELOAD_TOKEN"):
        assert f"\n#{name}=\n" in text
    return {"INTERCEPT_WARN__SECRET": WARN_SECRET, "INTERCEPT_ADMIN__RELOAD_TOKEN": RELOAD_TOKEN}


def test_example_config_is_accepted_and_keeps_the_ledger_in_the_state_directory() -> None:
    config = load_config(CONFIG, environ={})
    assert config.ledger.url is not None
    assert config.ledger.url.startswith("sqlite:///")
    ledger = Path(config.ledger.url.removeprefix("sqlite://"))
    assert ledger.is_absolute()
    assert ledger.parent == STATE_DIRECTORY  # StateDirectory=intercept: writable, kept
    assert str(config.rules) == INSTALLED_RULES
    assert config.messages is None  # the built-in pages: nothing more to install
    assert ip_address(config.admin_listen.rpartition(":")[0]).is_loopback  # never public
    assert config.mode == "proxy"
    assert config.workers is not None
    assert config.workers >= 2


def test_environment_file_sets_the_secrets_it_names(tmp_path: Path) -> None:
    shipped = environment_file(ENV_FILE.read_text(encoding="utf-8"))
    as_shipped = load_config(CONFIG, environ=shipped)
    assert (as_shipped.warn.secret, as_shipped.admin.reload_token) == (None, None)
    # as shipped the file sets nothing, so a secret named in the YAML is kept
    in_yaml = tmp_path / "intercept.yaml"
    in_yaml.write_text(
        CONFIG.read_text(encoding="utf-8") + f"\nwarn:\n  secret: {WARN_SECRET}\n", encoding="utf-8"
    )
    assert load_config(in_yaml, environ=shipped).warn.secret == WARN_SECRET
    filled = load_config(CONFIG, environ=filled_environment())
    assert filled.warn.secret == WARN_SECRET
    assert filled.admin.reload_token == RELOAD_TOKEN
    # the commented PostgreSQL line, once enabled, replaces the SQLite ledger
    line = next(
        raw for raw in ENV_FILE.read_text(encoding="utf-8").splitlines()
        if raw.startswith("#INTERCEPT_LEDGER__URL=")
    )  # fmt: skip
    postgres = load_config(CONFIG, environ=environment_file(line.removeprefix("#")))
    assert postgres.ledger.url is not None
    assert postgres.ledger.url.startswith("postgresql://")


# --- running what the unit runs -------------------------------------------------------------


@dataclass
class Stage:
    """What a real installation has under /etc/intercept and /var/lib/intercept, in a temporary
    folder: the shipped configuration with loopback ports, the demo rules, the filled
    environment file. `etc_path`/`state_path` name those folders as the service sees them."""

    etc: Path
    state: Path
    port: int
    admin: int

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin_base(self) -> str:
        return f"http://127.0.0.1:{self.admin}"


def stage(folder: Path, *, etc_path: str, state_path: str) -> Stage:
    etc = folder / "etc-intercept"
    state = folder / "state"
    (etc / "rules").mkdir(parents=True)
    state.mkdir()
    shutil.copy(ROOT / "rules" / "demo.yaml", etc / "rules" / "demo.yaml")
    port, admin = free_port(), free_port()
    config = render(
        CONFIG.read_text(encoding="utf-8"),
        {
            "listen: 0.0.0.0:8080": f"listen: 127.0.0.1:{port}",
            "admin_listen: 127.0.0.1:9090": f"admin_listen: 127.0.0.1:{admin}",
            "upstream: http://127.0.0.1:8000": "upstream: http://127.0.0.1:9",  # nothing there
            f"rules: {INSTALLED_RULES}": f"rules: {etc_path}/rules",
            f"sqlite://{STATE_DIRECTORY}/": f"sqlite://{state_path}/",
        },
    )
    # so that only the SIGHUP can make the added rule count, not the file watcher
    config += "\nreload:\n  watch: false\n"
    (etc / "intercept.yaml").write_text(config, encoding="utf-8")
    env = render(
        ENV_FILE.read_text(encoding="utf-8"),
        {f"\n#{name}=\n": f"\n{name}={value}\n" for name, value in filled_environment().items()},
    )
    (etc / "intercept.env").write_text(env, encoding="utf-8")
    (etc / "intercept.env").chmod(0o600)
    return Stage(etc, state, port, admin)


def http_text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        text: str = response.read().decode()
        return text


def wait_until_healthy(
    stage: Stage, gone: Callable[[], str | None], explain: Callable[[], str]
) -> None:
    """Until /healthz answers 200; `gone` says why the service (or container) has exited."""
    deadline = time.monotonic() + STEP_TIMEOUT
    while True:
        reason = gone()
        assert reason is None, reason
        with contextlib.suppress(OSError):
            if http_status(stage.admin_base + "/healthz") == 200:
                return
        assert time.monotonic() < deadline, f"no /healthz within {STEP_TIMEOUT:.0f} s{explain()}"
        time.sleep(0.1)


def wait_for_status(url: str, expected: int, explain: Callable[[], str]) -> None:
    deadline = time.monotonic() + STEP_TIMEOUT
    while (status := http_status(url)) != expected:
        assert time.monotonic() < deadline, f"{url}: {status}, not {expected}\n{explain()}"
        time.sleep(0.2)


def check_serving(stage: Stage, explain: Callable[[], str]) -> None:
    """Serving with the demo rules, the metrics summed over the workers."""
    assert http_status(stage.admin_base + "/readyz") == 200, explain()
    assert http_status(stage.base + BLOCKED) == 200, explain()  # the deterrence page
    assert http_status(stage.base + NEW_PHRASE) == 502, explain()  # forwarded: no upstream
    # the searches reach the metrics within a second (each worker hands its counts over once a
    # second, through files in the metrics folder under /tmp)
    deadline = time.monotonic() + STEP_TIMEOUT
    while "intercept_searches_total{" not in http_text(stage.admin_base + "/metrics"):
        assert time.monotonic() < deadline, f"no searches counted in /metrics{explain()}"
        time.sleep(0.2)
    # the token from the environment file opens POST /admin/reload
    reload = stage.admin_base + "/admin/reload"
    headers = {"Authorization": f"Bearer {RELOAD_TOKEN}"}
    assert http_status(reload, method="POST", headers=headers) == 200, explain()


def test_exec_start_serves_reloads_on_hup_and_drains_on_term(tmp_path: Path) -> None:
    """The unit's own command lines as a plain process, in WorkingDirectory, with the
    environment file's variables: what systemd would run, less the sandbox."""
    here = stage(
        tmp_path, etc_path=str(tmp_path / "etc-intercept"), state_path=str(tmp_path / "state")
    )
    argv = shlex.split(only("ExecStart"))
    argv[0] = str(venv_command())
    argv[argv.index(INSTALLED_CONFIG)] = str(here.etc / "intercept.yaml")
    env = {name: value for name, value in os.environ.items() if not name.startswith("INTERCEPT_")}
    env.update(environment_file((here.etc / "intercept.env").read_text(encoding="utf-8")))
    log = tmp_path / "service.log"
    with open(log, "wb") as output:
        service = subprocess.Popen(
            argv, cwd=here.state, env=env, stdin=subprocess.DEVNULL, stdout=output,
            stderr=subprocess.STDOUT,
        )  # fmt: skip

    def explain() -> str:
        return "\n--- service output ---\n" + log.read_text(encoding="utf-8", errors="replace")

    def alive() -> str | None:
        code = service.poll()
        return None if code is None else f"exited with {code}{explain()}"

    try:
        wait_until_healthy(here, alive, explain)
        check_serving(here, explain)
        (here.etc / "rules" / "extra.yaml").write_text(EXTRA_RULES, encoding="utf-8")
        reload = shlex.split(only("ExecReload").replace("$MAINPID", str(service.pid)))
        subprocess.run(reload, check=True, timeout=10)
        wait_for_status(here.base + NEW_PHRASE, 200, explain)  # the added rule is in force
        assert alive() is None
        service.send_signal(getattr(signal, only("KillSignal")))
        assert service.wait(timeout=float(only("TimeoutStopSec"))) == 0, explain()
    finally:
        if service.poll() is None:
            service.kill()
            service.wait()
    assert (here.state / "ledger.sqlite3").stat().st_size > 0  # the counts were written


# --- the unit under a real systemd --------------------------------------------------------

TEST_TARGET = """\
[Unit]
Description=Boot only as far as Intercept (tests/deploy/test_deploy_systemd.py)
Requires=intercept.service
After=intercept.service
AllowIsolate=yes
"""

# The console script pip writes, with the interpreter where the unit expects the venv.
CONSOLE_SCRIPT = """\
#!/opt/intercept/bin/python3
import sys
from intercept.cli import main
sys.exit(main())
"""


def debian_python() -> Path:
    """Debian's own python3: the container has the host's /usr but not this test's virtual
    environment's interpreter (which may live under /root, hidden by ProtectHome=yes)."""
    python = Path("/usr/bin/python3")
    if not python.exists():
        pytest.skip("no /usr/bin/python3 (Debian package python3) to build /opt/intercept with")
    version = subprocess.run(
        [str(python), "-c", "import sys; print(*sys.version_info[:2])"],
        capture_output=True, text=True, timeout=30, check=True,
    ).stdout.split()  # fmt: skip
    if tuple(map(int, version)) != sys.version_info[:2]:
        ours = ".".join(map(str, sys.version_info[:2]))
        pytest.skip(f"/usr/bin/python3 is {'.'.join(version)}: the compiled dependencies here "
                    f"are for {ours}")  # fmt: skip
    return python


def opt_intercept(folder: Path) -> Path:
    """A virtual environment to bind as /opt/intercept: Debian's python3, the packages of the
    environment running the tests (bound at /srv/intercept-site) and this checkout's source
    (bound at /srv/intercept-src, found first), and the console script the unit runs."""
    venv = folder / "opt-intercept"
    subprocess.run(
        [str(debian_python()), "-m", "venv", "--without-pip", str(venv)],
        check=True, timeout=60, capture_output=True,
    )  # fmt: skip
    version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    (venv / "lib" / version / "site-packages" / "intercept-test.pth").write_text(
        "import sys; sys.path[:0] = ['/srv/intercept-src']; "
        "import site; site.addsitedir('/srv/intercept-site')\n",
        encoding="utf-8",
    )
    script = venv / "bin" / "intercept"
    script.write_text(CONSOLE_SCRIPT, encoding="utf-8")
    script.chmod(0o755)
    return venv


class Container:
    """This machine's systemd booted by systemd-nspawn; `run` runs a command inside."""

    def __init__(self, process: subprocess.Popen[bytes], log: Path) -> None:
        self.process = process
        self.log = log
        self._init: int | None = None

    def init_pid(self) -> int:
        """The container's PID 1 (systemd), as the host numbers it: nspawn's only child."""
        while self._init is None:
            children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
            with contextlib.suppress(OSError):
                found = children.read_text(encoding="ascii").split()
                if found:
                    self._init = int(found[0])
                    break
            assert self.process.poll() is None, self.explain()
            time.sleep(0.05)
        return self._init

    def run(self, *argv: str, check: bool = True) -> str:
        command = ["nsenter", f"--target={self.init_pid()}", "--mount", "--pid", "--", *argv]
        result = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
        if check:
            assert result.returncode == 0, f"{argv}: {result.stdout}{result.stderr}"
        return result.stdout

    def gone(self) -> str | None:
        if self.process.poll() is not None:
            return f"systemd-nspawn exited with {self.process.returncode}{self.explain()}"
        return None

    def explain(self) -> str:
        text = "\n--- systemd-nspawn ---\n" + self.log.read_text(errors="replace")[-4000:]
        if self.process.poll() is None:
            journal = self.run("journalctl", "--no-pager", "-u", "intercept.service", check=False)
            text += "\n--- journal of intercept.service ---\n" + journal[-6000:]
        return text


@contextlib.contextmanager
def booted(binds: Mapping[str, Path], log: Path) -> Iterator[Container]:
    """Boot a throwaway container from this machine's own /usr with `binds` (container path:
    host path, read-only) and only intercept-test.target as its goal; always shut it down."""
    nspawn = shutil.which("systemd-nspawn")
    if nspawn is None:
        pytest.skip("systemd-nspawn is missing: Debian package systemd-container "
                    "(.ci/run installs it)")  # fmt: skip
    if os.geteuid() != 0:
        pytest.skip("systemd-nspawn needs root")
    if shutil.which("nsenter") is None:
        pytest.skip("nsenter is missing: Debian package util-linux")
    argv = [
        nspawn, "--quiet", "--directory=/", "--volatile=yes",
        # no machined or host systemd to register with or to make a scope: none runs here
        "--register=no", "--keep-unit", "--console=pipe",
        *(f"--bind-ro={host}:{inside}" for inside, host in binds.items()),
        "--boot", "--", "systemd.unit=intercept-test.target", "systemd.log_color=0",
    ]  # fmt: skip
    with open(log, "wb") as output:
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT
        )
    container = Container(process, log)
    try:
        yield container
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)  # nspawn halts the container cleanly
            try:
                process.wait(timeout=STEP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_the_unit_as_shipped_under_a_real_systemd(tmp_path: Path) -> None:
    here = stage(tmp_path, etc_path="/etc/intercept", state_path=str(STATE_DIRECTORY))
    (tmp_path / "intercept-test.target").write_text(TEST_TARGET, encoding="utf-8")
    binds = {
        "/etc/systemd/system/intercept.service": UNIT,  # unchanged
        "/etc/systemd/system/intercept-test.target": tmp_path / "intercept-test.target",
        # an empty /etc means a first boot, whose wizard would wait for a key
        "/etc/systemd/system/systemd-firstboot.service": Path("/dev/null"),
        "/etc/intercept": here.etc,
        "/opt/intercept": opt_intercept(tmp_path),
        "/srv/intercept-src": ROOT,
        "/srv/intercept-site": Path(sysconfig.get_paths()["purelib"]),
    }
    with booted(binds, tmp_path / "nspawn.log") as container:
        wait_until_healthy(here, container.gone, container.explain)
        check_serving(here, container.explain)

        main_pid = container.run("systemctl", "show", "--value", "-p", "MainPID", "intercept")
        status = container.run("cat", f"/proc/{main_pid.strip()}/status")
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        assert fields["Uid"].split()[0] != "0"  # DynamicUser
        assert fields["NoNewPrivs"].strip() == "1"
        assert fields["Seccomp"].strip() == "2"  # the system call filter is in force
        assert int(fields["CapEff"], 16) == 0

        (here.etc / "rules" / "extra.yaml").write_text(EXTRA_RULES, encoding="utf-8")
        container.run("systemctl", "reload", "intercept")  # ExecReload: SIGHUP
        wait_for_status(here.base + NEW_PHRASE, 200, container.explain)
        assert container.run("systemctl", "show", "--value", "-p", "MainPID", "intercept") == (
            main_pid
        )  # reloaded, not restarted

        container.run("systemctl", "stop", "intercept")  # KillSignal: SIGTERM, a drain
        result = container.run(
            "systemctl", "show", "-p", "Result", "-p", "ExecMainStatus", "intercept"
        )
        assert sorted(result.split()) == ["ExecMainStatus=0", "Result=success"], container.explain()
        # the ledger is in the StateDirectory, owned by the dynamic user
        owner = container.run("stat", "-L", "-c", "%u %s", f"{STATE_DIRECTORY}/ledger.sqlite3")
        uid, size = map(int, owner.split())
        assert uid == int(fields["Uid"].split()[0])
        assert size > 0
