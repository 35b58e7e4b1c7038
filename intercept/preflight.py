"""Settings that start fine but are wrong for production, found before serving.

`intercept serve` starts with each of these (an operator may be trying things out), but says so
loudly: a WARNING line at start, `cautions` in `/admin/status`, and the gauge
`intercept_config_cautions{caution=...}` set to 1, which an alert can watch.

- `survey_url_placeholder`: the survey link still points at the shipped placeholder, so every
  deterrence page sends people to an address that is not a survey.
- `warn_secret_unset`: "continue to results" links are signed with a random per-process key,
  so they break on every restart and between workers and replicas.
- `ledger_not_persistent`: the research ledger's SQLite file is on a file system that does not
  outlive the process's host: a tmpfs anywhere (lost at reboot), or, inside a container, the
  container's own root file system (lost with the container; a relative path lands there).

Each message names the setting to change, never a secret's value.

`check_listeners` runs before anything slow: a listener's address in use is refused at once,
naming which listener, instead of after a large rule set has loaded.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from intercept.config import Config
from intercept.errors import InterceptError
from intercept.research.ledger import LedgerError, sqlite_path

__all__ = [
    "CAUTIONS",
    "PLACEHOLDER_SURVEY_URL",
    "Caution",
    "ListenError",
    "check_listeners",
    "in_container",
    "production_cautions",
]

PLACEHOLDER_SURVEY_URL = Config.model_fields["survey_url"].default
CAUTIONS = ("survey_url_placeholder", "warn_secret_unset", "ledger_not_persistent")
_VOLATILE = frozenset({"tmpfs", "ramfs"})


@dataclass(frozen=True, slots=True)
class Caution:
    """One production problem: `code` is a bounded metric label, `message` says what to do."""

    code: str
    message: str


def in_container(environ: Mapping[str, str] | None = None, root: Path = Path("/")) -> bool:
    """Whether this process runs in a container: the markers podman, Docker, systemd-nspawn
    and Kubernetes leave (`/run/.containerenv`, `/.dockerenv`, `$container`, the service
    host variable every pod gets)."""
    environ = os.environ if environ is None else environ
    if environ.get("container") or environ.get("KUBERNETES_SERVICE_HOST"):
        return True
    return (root / "run" / ".containerenv").exists() or (root / ".dockerenv").exists()


def _mount_of(path: Path, mountinfo: str) -> tuple[str, str]:
    """The mount point and file-system type holding `path`, from `/proc/self/mountinfo` text:
    the longest mount point that is `path` or one of its parents."""
    best = ("/", "")
    for line in mountinfo.splitlines():
        fields = line.split()
        if " - " not in line or len(fields) < 5:
            continue
        point = fields[4].replace("\\040", " ")
        fstype = line.split(" - ", 1)[1].split()[0]
        inside = point == "/" or path == Path(point) or Path(point) in path.parents
        if inside and len(point) >= len(best[0]):
            best = (point, fstype)
    return best


def _read_mountinfo() -> str:
    try:
        return Path("/proc/self/mountinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""  # not Linux: nothing is known about mounts, and nothing is claimed


def _ledger_caution(
    config: Config, *, container: bool, mountinfo: str, cwd: Path
) -> Caution | None:
    url = config.ledger.url
    if url is None or not url.startswith("sqlite:"):
        return None
    try:
        written = sqlite_path(url)
    except LedgerError:
        return None  # refused with its own message when the ledger is opened
    path = written if written.is_absolute() else cwd / written
    point, fstype = _mount_of(path, mountinfo)
    if fstype in _VOLATILE:
        return Caution(
            "ledger_not_persistent",
            f"ledger.url: {path} is on a {fstype} ({point}), which is emptied at reboot; "
            "put the research ledger on a disk",
        )
    if container and point == "/":
        relative = "" if written.is_absolute() else " (a relative path)"
        return Caution(
            "ledger_not_persistent",
            f"ledger.url: {path}{relative} is on the container's own file system and is lost "
            "with the container; mount a volume and point ledger.url at it "
            "(the shipped image uses /var/lib/intercept)",
        )
    return None


def production_cautions(
    config: Config,
    *,
    container: bool | None = None,
    mountinfo: str | None = None,
    cwd: Path | None = None,
) -> tuple[Caution, ...]:
    """Every caution that applies to `config` on this host (see the module docstring).
    `container`, `mountinfo` and `cwd` are found out when not given (tests give them)."""
    cautions = []
    if config.survey_url == PLACEHOLDER_SURVEY_URL:
        cautions.append(
            Caution(
                "survey_url_placeholder",
                f"survey_url is the placeholder {PLACEHOLDER_SURVEY_URL}: pages link to no "
                "survey; set your survey's address",
            )
        )
    if config.warn.secret is None and config.warn.secret_file is None:
        cautions.append(
            Caution(
                "warn_secret_unset",
                "warn.secret is not set: continue links use a random key and stop working on "
                "restart and across workers and replicas; set warn.secret or warn.secret_file",
            )
        )
    ledger = _ledger_caution(
        config,
        container=in_container() if container is None else container,
        mountinfo=_read_mountinfo() if mountinfo is None else mountinfo,
        cwd=Path.cwd() if cwd is None else cwd,
    )
    if ledger is not None:
        cautions.append(ledger)
    return tuple(cautions)


class ListenError(InterceptError):
    """A listener's address cannot be bound; the message names the listener."""


def check_listeners(config: Config) -> None:
    """Bind each configured listener's address once and let it go, so that an address in use
    (by another program, or by another Intercept, whose supervisor holds its listeners:
    `intercept.server.listeners`) is refused before the rules load. Port 0 (any free port)
    is not checked. Raises `ListenError` naming the public or admin listener."""
    listeners = (("public listener (listen)", config.listen),
                 ("admin listener (admin_listen)", config.admin_listen))  # fmt: skip
    if config.listen == config.admin_listen and not config.listen.endswith(":0"):
        raise ListenError(f"listen and admin_listen are the same address {config.listen}")
    for name, address in listeners:
        host, _, port_text = address.rpartition(":")
        port = int(port_text)
        if port == 0:
            continue
        try:
            (family, kind, proto, _, where), *_ = socket.getaddrinfo(
                host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            )
            with socket.socket(family, kind, proto) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                probe.bind(where)
        except OSError as error:
            reason = error.strerror or type(error).__name__
            raise ListenError(f"{name} {address}: {reason.lower()}") from None
