#!/usr/bin/env python3
"""Build Intercept's container image with podman from a checkout; the build itself fetches
nothing (`--network none`), so no image registry is needed.

    python3 deploy/container/build.py              # -> localhost/intercept-deterrence:VERSION
    python3 deploy/container/build.py services     # PostgreSQL and Prometheus from Debian
    python3 deploy/container/build.py all --rebuild-base

`image` (the default), in three steps, each timed on stderr:

1. The base image: Debian bookworm `--variant=minbase` plus python3, python3-venv and tini,
   made by mmdebstrap from the host's Debian sources and imported with `podman import`. Its
   tag carries a key over everything that shapes it (suite, packages, options, the sources
   text), so later builds reuse it; `--rebuild-base` makes it anew (security updates).
2. The wheelhouse: the project's wheel (built from a copy of the checkout, which so gets no
   build/ folder) and every dependency, with the `postgres` extra, as binary wheels for the
   base's Python (CPython 3.11, manylinux, this machine's architecture), whatever Python runs
   this script.
3. `podman build --format docker --network none` on deploy/container/Containerfile: pip
   installs from the wheelhouse only; `--format docker` keeps HEALTHCHECK, which the OCI
   image format has no field for.

`services`: the images deploy/compose/compose.yaml can use on a host that reaches no image
registry, made the same way from Debian's packages: localhost/intercept-postgres:15
(postgresql 15, the interface of the official postgres image: POSTGRES_USER, POSTGRES_PASSWORD,
POSTGRES_DB, data in /var/lib/postgresql/data) and localhost/intercept-prometheus:2 (Debian's
prometheus 2.42, the official image's paths). Both come from one base image.

Needs podman and, for a new base, mmdebstrap (Debian: apt-get install podman mmdebstrap runc),
and pip for the Python running it. On a host without systemd, set CONTAINERS_CONF to
deploy/container/containers.conf first. `--reuse` (for tests) keeps an image already built from
the same sources instead of building again; by default every build fetches current wheels.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
COMPOSE_IMAGES = ROOT / "deploy" / "compose" / "images"
IMAGE = "localhost/intercept-deterrence"
KEY_LABEL = "org.intercept.build-key"  # on every image built here: what it was built from

SUITE = "bookworm"
PYTHON_VERSION = "3.11"  # bookworm's python3: the wheels must be built for it
GLIBC_MINOR = 36  # bookworm's glibc 2.36: manylinux wheels up to this one run
DPKG_OPTIONS = (  # no manuals, translations or docs in the images; licences stay
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/locale/*",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
)
RECIPE_VERSION = 1  # bump when a base recipe changes in a way its key would not see
HOST_SOURCES = (Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list"))
DEFAULT_MIRROR = "http://deb.debian.org/debian"
EXTRA = "postgres"  # psycopg: the ledger on PostgreSQL (compose.yaml uses it)
# what the wheel is made of (pyproject: packages intercept*, readme), and the image's own files
WHEEL_SOURCES = ("pyproject.toml", "README.md", "intercept")
CONTEXT_FILES = ("Containerfile", "intercept.yaml", "healthcheck.py")
SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build", "dist")


@dataclass(frozen=True)
class Base:
    """A base image made by mmdebstrap: minbase plus `include`, `customize` run on the tree."""

    name: str
    include: tuple[str, ...]
    exclude: tuple[str, ...] = ()  # paths dpkg leaves out, as well as DPKG_OPTIONS'
    customize: tuple[str, ...] = ()


PYTHON_BASE = Base("localhost/intercept-base", ("python3", "python3-venv", "tini"))
SERVICES_BASE = Base(
    "localhost/intercept-services-base",
    ("postgresql-15", "prometheus", "tini"),
    exclude=(
        # Prometheus's web pages' scripts: 220 MB, mostly time zone tables; the API stays
        "/usr/share/javascript/*",
        # PostgreSQL's JIT (LLVM, 110 MB): without it queries run interpreted, as with jit=off
        "/usr/lib/*-linux-gnu/libLLVM*",
        "/usr/lib/postgresql/15/lib/llvmjit*",
        "/usr/lib/postgresql/15/lib/bitcode/*",
    ),
    # the cluster the package makes is not used: the image's entrypoint makes its own
    customize=('rm -rf "$1"/var/lib/postgresql/15/main "$1"/etc/postgresql/15/main',),
)
SERVICES = {  # image name -> its build context under deploy/compose/images/
    "localhost/intercept-postgres:15": "postgres",
    "localhost/intercept-prometheus:2": "prometheus",
}


def log(message: str) -> None:
    print(f"build: {message}", file=sys.stderr, flush=True)


def run(command: list[str], *, quiet: bool = False) -> None:
    """Run `command`; with `quiet`, its output is shown only if it fails. A failure stops
    the build with the command's status."""
    output = subprocess.PIPE if quiet else None
    result = subprocess.run(
        command, stdout=output, stderr=subprocess.STDOUT if quiet else None, check=False
    )
    if result.returncode != 0:
        if quiet and result.stdout:
            sys.stderr.write(result.stdout.decode(errors="replace")[-8000:])
        log(f"failed ({result.returncode}): {' '.join(command)}")
        raise SystemExit(result.returncode or 1)


def default_mirror() -> str:
    """The host's Debian sources file when the host is Debian bookworm (its mirror, its
    security suite, any proxy set up for apt), else the public Debian mirror."""
    os_release = Path("/etc/os-release")
    text = os_release.read_text(encoding="utf-8") if os_release.exists() else ""
    if re.search(rf"^VERSION_CODENAME={SUITE}$", text, re.MULTILINE):
        for path in HOST_SOURCES:
            if path.exists() and SUITE in path.read_text(encoding="utf-8"):
                return str(path)
    return DEFAULT_MIRROR


def digest(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:12]


def tree_digest(root: Path, names: tuple[str, ...]) -> str:
    """A key over the paths and contents of `names` under `root` (folders recursively)."""
    hasher = hashlib.sha256()
    for name in names:
        top = root / name
        files = sorted(top.rglob("*")) if top.is_dir() else [top]
        for path in files:
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                hasher.update(str(path.relative_to(root)).encode() + b"\0")
                hasher.update(path.read_bytes() + b"\0")
    return hasher.hexdigest()[:12]


def image_exists(name: str) -> bool:
    return subprocess.run(["podman", "image", "exists", name], check=False).returncode == 0


def ensure_base(base: Base, mirror: str, work: Path, rebuild: bool) -> str:
    """The base image's name, made with mmdebstrap + podman import unless it exists."""
    sources = Path(mirror).read_text(encoding="utf-8") if Path(mirror).exists() else mirror
    dpkg = (*DPKG_OPTIONS, *(f"path-exclude={path}" for path in base.exclude))
    key = digest(RECIPE_VERSION, SUITE, base.include, dpkg, base.customize, sources,
                 platform.machine())  # fmt: skip
    name = f"{base.name}:{SUITE}-{key}"
    if image_exists(name) and not rebuild:
        log(f"base image {name} exists: reused")
        return name
    if shutil.which("mmdebstrap") is None:
        log("mmdebstrap is not installed (Debian: apt-get install mmdebstrap)")
        raise SystemExit(2)
    started = time.monotonic()
    tarball = work / f"{base.name.rpartition('/')[2]}.tar"
    command = ["mmdebstrap", "--variant=minbase", f"--include={','.join(base.include)}"]
    hooks = Path("/usr/share/mmdebstrap/hooks/merged-usr")
    if hooks.is_dir():  # usr-is-merged rather than the usrmerge package (and all of perl)
        command.append(f"--hook-dir={hooks}")
    command += [f"--dpkgopt={option}" for option in dpkg]
    command += [f"--customize-hook={hook}" for hook in base.customize]
    command += ["--aptopt=Acquire::Retries 3", SUITE, str(tarball), mirror]
    run(command, quiet=True)
    description = f"Debian {SUITE} minbase + {' '.join(base.include)}"
    before = subprocess.run(
        ["podman", "image", "inspect", "--format", "{{.Id}}", name],
        capture_output=True, text=True, check=False,
    ).stdout.strip()  # fmt: skip
    run(["podman", "import", "--quiet", "--change", f'LABEL description="{description}"',
         str(tarball), name], quiet=True)  # fmt: skip
    tarball.unlink()
    if before:  # the base this one replaces, unless images built on it still need it
        subprocess.run(["podman", "rmi", before], capture_output=True, check=False)
    log(f"base image {name} made in {time.monotonic() - started:.0f} s")
    return name


def manylinux_platforms(arch: str) -> list[str]:
    """Every manylinux tag a glibc 2.36 system runs, newest first (pip takes them as given)."""
    tags = [f"manylinux_2_{minor}_{arch}" for minor in range(GLIBC_MINOR, 4, -1)]
    return [*tags, f"manylinux2014_{arch}", f"manylinux2010_{arch}", f"manylinux1_{arch}"]


def wheelhouse(python: str, work: Path, target: Path) -> Path:
    """The project's wheel and all its dependencies' wheels in `target`; the project's."""
    started = time.monotonic()
    source = work / "source"
    source.mkdir()
    for name in WHEEL_SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=SKIP)
        else:
            shutil.copy2(ROOT / name, source / name)
    pip = [python, "-m", "pip", "--disable-pip-version-check"]
    run([*pip, "wheel", "--quiet", "--no-deps", "--wheel-dir", str(target), str(source)])
    (wheel,) = target.glob("intercept_deterrence-*.whl")
    platforms = [f"--platform={tag}" for tag in manylinux_platforms(platform.machine())]
    run([
        *pip, "download", "--quiet", "--only-binary=:all:", *platforms,
        f"--python-version={PYTHON_VERSION}", "--implementation=cp",
        f"--abi=cp{PYTHON_VERSION.replace('.', '')}", "--abi=abi3", "--abi=none",
        "--dest", str(target), f"{wheel}[{EXTRA}]",
    ])  # fmt: skip
    count = len(list(target.glob("*.whl")))
    log(f"wheelhouse: {count} wheels in {time.monotonic() - started:.0f} s")
    return wheel


def podman_build(context: Path, base: str, tags: list[str], key: str, *args: str) -> None:
    """`podman build` of `context` on `base`, labelled with `key` (what it was built from);
    an image these tags named before, now untagged, is removed."""
    started = time.monotonic()
    run([
        "podman", "build", "--quiet", "--format=docker", "--network=none", "--pull=never",
        "--layers=false", f"--label={KEY_LABEL}={key}",
        f"--build-arg=BASE={base}", *args, *(f"--tag={tag}" for tag in tags),
        "--file", str(context / "Containerfile"), str(context),
    ], quiet=True)  # fmt: skip
    log(f"image {', '.join(tags)} built in {time.monotonic() - started:.0f} s")
    remove_untagged()


def remove_untagged() -> None:
    """Remove images built here that no tag names any more (one a container uses stays)."""
    untagged = subprocess.run(
        ["podman", "images", "--quiet", "--filter=dangling=true", f"--filter=label={KEY_LABEL}"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    for image in set(untagged.stdout.split()):
        subprocess.run(["podman", "rmi", image], capture_output=True, check=False)


def built_from(name: str) -> str | None:
    """The key `name` was built from, or None (no such image, or not built here)."""
    result = subprocess.run(
        ["podman", "image", "inspect", "--format", f'{{{{index .Labels "{KEY_LABEL}"}}}}', name],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    key = result.stdout.strip()
    return key if result.returncode == 0 and key != "<no value>" else None


def build_intercept(args: argparse.Namespace, mirror: str, work: Path) -> str:
    """Intercept's image; its first tag."""
    key = digest(tree_digest(ROOT, WHEEL_SOURCES), tree_digest(HERE, (*CONTEXT_FILES, "build.py")))
    keyed = f"{IMAGE}:src-{key}"
    if args.reuse and image_exists(keyed):
        tags = args.tag or [f"{IMAGE}:latest"]
        run(["podman", "tag", keyed, *tags])
        remove_untagged()
        log(f"image {keyed} (same sources) reused as {', '.join(tags)}")
        return str(tags[0])
    base = ensure_base(PYTHON_BASE, mirror, work, args.rebuild_base)
    context = work / "context"
    wheel = wheelhouse(args.python, work, context / "wheelhouse")
    for name in CONTEXT_FILES:
        shutil.copy2(HERE / name, context / name)
    version = wheel.name.split("-")[1]
    tags = args.tag or [f"{IMAGE}:{version}", f"{IMAGE}:latest"]
    # the source-key tags of earlier builds go, so that their images can go too
    listing = subprocess.run(
        ["podman", "images", "--format", "{{.Repository}}:{{.Tag}}", IMAGE],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    for name in listing.stdout.split():
        if name.startswith(f"{IMAGE}:src-") and name != keyed:
            subprocess.run(["podman", "untag", name, name], capture_output=True, check=False)
    podman_build(context, base, [*tags, keyed], key, f"--build-arg=VERSION={version}")
    return str(tags[0])


def build_services(args: argparse.Namespace, mirror: str, work: Path) -> str:
    """The PostgreSQL and Prometheus images from Debian's packages; the first's name."""
    base = ensure_base(SERVICES_BASE, mirror, work, args.rebuild_base)
    for name, folder in SERVICES.items():
        files = tuple(path.name for path in sorted((COMPOSE_IMAGES / folder).iterdir()))
        key = digest(base, tree_digest(COMPOSE_IMAGES / folder, files))
        if built_from(name) == key:
            log(f"image {name} is up to date")
        else:
            podman_build(COMPOSE_IMAGES / folder, base, [name], key)
    return next(iter(SERVICES))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("what", nargs="?", choices=("image", "services", "all"), default="image")
    parser.add_argument(
        "--tag", action="append", help=f"Intercept's image name (default {IMAGE}:VERSION, :latest)"
    )
    parser.add_argument("--rebuild-base", action="store_true", help="make base images anew")
    parser.add_argument("--mirror", help="Debian mirror URL or apt sources file for the bases")
    parser.add_argument(
        "--python", default=sys.executable, help="the Python whose pip makes the wheelhouse"
    )
    parser.add_argument(
        "--reuse", action="store_true", help="keep an image built from the same sources"
    )
    args = parser.parse_args(argv)
    if shutil.which("podman") is None:
        log("podman is not installed (Debian: apt-get install podman mmdebstrap runc)")
        return 2
    conf = os.environ.get("CONTAINERS_CONF")
    if conf:  # podman's helpers run in other folders: a relative path would not be found
        os.environ["CONTAINERS_CONF"] = str(Path(conf).resolve())
    mirror = args.mirror or default_mirror()
    started = time.monotonic()
    names = []
    with tempfile.TemporaryDirectory(prefix="intercept-image-") as folder:
        if args.what in ("image", "all"):
            names.append(build_intercept(args, mirror, Path(folder)))
        if args.what in ("services", "all"):
            names.append(build_services(args, mirror, Path(folder)))
    log(f"done in {time.monotonic() - started:.0f} s")
    print("\n".join(names))
    return 0


if __name__ == "__main__":
    sys.exit(main())
