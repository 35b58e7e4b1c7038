"""deploy/kubernetes/: the kustomize base, validated (no cluster runs here, so nothing is applied).

- Every manifest passes `kubernetes-validate --strict` (the PyPI package ships the API
  schemas and needs no cluster) for the newest Kubernetes it knows and for 1.30, the oldest
  that has the preStop `sleep` action; `kubectl kustomize` builds the base, and its output
  validates too.
- The configuration in the ConfigMap is accepted by Intercept's loader with the Secret's values
  as the Deployment passes them, and the Secret's placeholders are refused, so a pod cannot
  start with them; the example rules load and their examples hold.
- The properties the deployment relies on: the Service exposes only the public port, the
  probes ask the admin port's /healthz and /readyz, the security context, the drain time, the
  NetworkPolicy, the PodDisruptionBudget.
- The pod's command as a local process with the ConfigMap's files laid out as the kubelet
  mounts them (its `..data` symlink swap): it serves, turns ready, reloads the rules when the
  ConfigMap changes, and drains on SIGTERM within the grace period.

Cost: about 5 s (kubernetes-validate loads large schemas; the process test takes 3 s).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from intercept.config import Config, ConfigError, load_config
from intercept.reload import load_checked
from tests.deploy_helpers import DEPLOY, free_port
from tests.processes import http_status, killed_at_exit

BASE = DEPLOY / "kubernetes"
MANIFESTS = sorted(p for p in BASE.glob("*.yaml") if p.name != "kustomization.yaml")
PUBLIC_PORT = 8080  # the image's ports (deploy/container/Containerfile)
ADMIN_PORT = 9090
IMAGE_UID = 10001
CONFIG_PATH = "/etc/intercept/intercept.yaml"
DRAIN_SECONDS = 60  # aiohttp's shutdown timeout: what requests in flight get on SIGTERM

WARN_SECRET = "a-warn-secret-for-this-test-only"
RELOAD_TOKEN = "a-reload-token-for-this-test-only"
LEDGER_URL = "postgresql://intercept:x@127.0.0.1:1/intercept"  # refused: nothing listens

Doc = dict[str, Any]


def documents(path: Path) -> list[Doc]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def manifest(kind: str, name: str | None = None) -> Doc:
    """The one manifest of `kind` (and `name`) in the base."""
    found = [
        doc
        for path in MANIFESTS
        for doc in documents(path)
        if doc["kind"] == kind and name in (None, doc["metadata"]["name"])
    ]
    assert len(found) == 1, f"{len(found)} manifests of kind {kind} {name or ''}"
    return found[0]


def pod_spec() -> Doc:
    spec: Doc = manifest("Deployment")["spec"]["template"]["spec"]
    return spec


def container() -> Doc:
    containers = pod_spec()["containers"]
    assert len(containers) == 1
    found: Doc = containers[0]
    return found


def port_number(name_or_number: str | int) -> int:
    """A container port by its name, or the number itself."""
    if isinstance(name_or_number, int):
        return name_or_number
    numbers = [p["containerPort"] for p in container()["ports"] if p["name"] == name_or_number]
    assert len(numbers) == 1, f"no container port named {name_or_number!r}"
    number: int = numbers[0]
    return number


def mount(volume: str) -> Doc:
    mounts = [m for m in container()["volumeMounts"] if m["name"] == volume]
    assert len(mounts) == 1, f"volume {volume!r} is mounted {len(mounts)} times"
    found: Doc = mounts[0]
    return found


def volume(name: str) -> Doc:
    volumes = [v for v in pod_spec()["volumes"] if v["name"] == name]
    assert len(volumes) == 1
    found: Doc = volumes[0]
    return found


def config_text() -> str:
    text: str = manifest("ConfigMap", "intercept-config")["data"]["intercept.yaml"]
    return text


def secret_environment(values: Mapping[str, str] | None = None) -> dict[str, str]:
    """The INTERCEPT_* variables as the Deployment sets them from the Secret: the Secret's own
    placeholders, or `values` by Secret key."""
    secret = manifest("Secret")
    data = dict(values) if values is not None else secret["stringData"]
    env = {}
    for variable in container()["env"]:
        ref = variable.get("valueFrom", {}).get("secretKeyRef")
        if ref is not None:
            assert ref["name"] == secret["metadata"]["name"]
            env[variable["name"]] = data[ref["key"]]
    return env


FILLED = {"warn-secret": WARN_SECRET, "reload-token": RELOAD_TOKEN, "ledger-url": LEDGER_URL}


def pod_config(folder: Path, environ: Mapping[str, str]) -> Config:
    path = folder / "intercept.yaml"
    path.write_text(config_text(), encoding="utf-8")
    return load_config(path, environ=environ)


# --- validation ---------------------------------------------------------------------------


def kubernetes_validate(paths: list[Path], version: str | None = None) -> str:
    if importlib.util.find_spec("kubernetes_validate") is None:
        pytest.skip("kubernetes-validate is not installed (pip install -e '.[test]' does)")
    argv = [sys.executable, "-m", "kubernetes_validate", "--strict"]
    if version is not None:
        argv += ["--kubernetes-version", version]
    result = subprocess.run(
        [*argv, *map(str, paths)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.mark.parametrize("version", [None, "1.30.0"], ids=["newest", "1.30"])
def test_every_manifest_validates_strictly(version: str | None) -> None:
    output = kubernetes_validate(MANIFESTS, version)
    resources = sum(len(documents(path)) for path in MANIFESTS)
    assert output.count(" passed for resource ") == resources, output


def test_the_kustomization_lists_every_manifest_and_nothing_else() -> None:
    kustomization = yaml.safe_load((BASE / "kustomization.yaml").read_text(encoding="utf-8"))
    assert kustomization["kind"] == "Kustomization"
    resources = kustomization["resources"]
    assert len(resources) == len(set(resources))
    assert sorted(resources) == [path.name for path in MANIFESTS]
    assert sorted(p.name for p in BASE.iterdir()) == sorted([*resources, "kustomization.yaml"])


def test_kubectl_kustomize_builds_the_base_and_the_output_validates(tmp_path: Path) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed (Debian's kubernetes-client is too old for "
                    "kustomize v5; the CI image has kubectl with kustomize v5)")  # fmt: skip
    result = subprocess.run(
        [kubectl, "kustomize", str(BASE)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    built = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    shipped = [doc for path in MANIFESTS for doc in documents(path)]
    key = sorted((doc["kind"], doc["metadata"]["name"]) for doc in shipped)
    assert sorted((doc["kind"], doc["metadata"]["name"]) for doc in built) == key
    (tmp_path / "built.yaml").write_text(result.stdout, encoding="utf-8")
    kubernetes_validate([tmp_path / "built.yaml"])


# --- configuration, secrets, rules --------------------------------------------------------


def test_configmap_config_is_accepted_with_the_secrets_the_deployment_passes(
    tmp_path: Path,
) -> None:
    config = pod_config(tmp_path, secret_environment(FILLED))
    assert (config.warn.secret, config.admin.reload_token) == (WARN_SECRET, RELOAD_TOKEN)
    assert config.ledger.url == LEDGER_URL  # one PostgreSQL ledger for every replica
    host, _, port = config.listen.rpartition(":")
    assert (host, int(port)) == ("0.0.0.0", port_number("http"))
    host, _, port = config.admin_listen.rpartition(":")
    assert (host, int(port)) == ("0.0.0.0", port_number("admin"))  # the kubelet probes it
    assert (port_number("http"), port_number("admin")) == (PUBLIC_PORT, ADMIN_PORT)
    assert str(config.rules) == mount("rules")["mountPath"]
    assert "subPath" not in mount("rules")  # ConfigMap updates reach a folder mount only
    assert config.reload.watch  # and are reloaded live
    assert config.messages is None  # the built-in pages
    assert config.workers == int(container()["resources"]["limits"]["cpu"])


def test_the_secret_placeholders_cannot_go_live(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as refused:
        pod_config(tmp_path, secret_environment())
    assert "warn.secret" in str(refused.value)
    assert "admin.reload_token" in str(refused.value)
    assert "FILL-IN" not in str(refused.value)  # secrets are never repeated
    secret = manifest("Secret")
    assert all("FILL-IN" in value for value in secret["stringData"].values())


def test_the_example_rules_load_and_their_examples_hold(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    for name, text in manifest("ConfigMap", "intercept-rules")["data"].items():
        (rules / name).write_text(text, encoding="utf-8")
    config = load_config(environ={}, overrides={"rules": rules})
    ruleset, _ = load_checked(config)  # raises on a failing example
    assert len(ruleset.rules) >= 2
    match = ruleset.match("blocked example")
    assert match is not None
    assert match.rule_id == "EXAMPLE-001"


def test_config_and_rules_are_mounted_where_the_image_reads_them() -> None:
    assert container()["args"] == ["serve", "--config", CONFIG_PATH]
    config = mount("config")
    assert (config["mountPath"], config["subPath"]) == (CONFIG_PATH, "intercept.yaml")
    assert volume("config")["configMap"]["name"] == "intercept-config"
    assert volume("rules")["configMap"]["name"] == "intercept-rules"
    assert all(m.get("readOnly") for m in (mount("config"), mount("rules")))


# --- properties ---------------------------------------------------------------------------


def test_the_service_exposes_only_the_public_port() -> None:
    service = manifest("Service")
    ports = service["spec"]["ports"]
    assert [port_number(p["targetPort"]) for p in ports] == [PUBLIC_PORT]
    assert service["spec"]["type"] == "ClusterIP"
    labels = manifest("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()


def test_probes_ask_the_admin_port() -> None:
    probes = {name: container()[name]["httpGet"] for name in
              ("startupProbe", "livenessProbe", "readinessProbe")}  # fmt: skip
    assert {name: (get["path"], port_number(get["port"])) for name, get in probes.items()} == {
        "startupProbe": ("/healthz", ADMIN_PORT),
        "livenessProbe": ("/healthz", ADMIN_PORT),
        "readinessProbe": ("/readyz", ADMIN_PORT),
    }


def test_security_context() -> None:
    pod = pod_spec()["securityContext"]
    assert pod["runAsNonRoot"] is True
    assert pod["runAsUser"] == IMAGE_UID
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
    own = container()["securityContext"]
    assert own["allowPrivilegeEscalation"] is False
    assert own["readOnlyRootFilesystem"] is True
    assert own["runAsNonRoot"] is True
    assert own["capabilities"] == {"drop": ["ALL"]}
    assert own["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod_spec()["automountServiceAccountToken"] is False


def test_writable_places_are_empty_dirs() -> None:
    """The root file system is read-only: /tmp, the workers' metrics folder, the working
    folder (the ledger's spool) and the compiled rule cache the configuration names are
    emptyDirs (the cache's outlives a container restart: a restarted one starts warm)."""
    env = {v["name"]: v.get("value") for v in container()["env"]}
    writable = {m["mountPath"]: m["name"] for m in container()["volumeMounts"]
                if not m.get("readOnly")}  # fmt: skip
    cache = yaml.safe_load(config_text())["rules_cache"]
    assert set(writable) == {"/tmp", env["PROMETHEUS_MULTIPROC_DIR"], "/var/lib/intercept", cache}
    for name in writable.values():
        assert "emptyDir" in volume(name)
        assert "sizeLimit" in volume(name)["emptyDir"]


def test_resources_replicas_and_the_drain_time() -> None:
    deployment = manifest("Deployment")
    assert deployment["spec"]["replicas"] >= 2
    resources = container()["resources"]
    assert set(resources["requests"]) == set(resources["limits"]) == {"cpu", "memory"}
    pre_stop = container()["lifecycle"]["preStop"]["sleep"]["seconds"]
    grace = pod_spec()["terminationGracePeriodSeconds"]
    assert grace >= pre_stop + DRAIN_SECONDS + 5  # the drain and the ledger's last write
    strategy = deployment["spec"]["strategy"]["rollingUpdate"]
    assert strategy["maxUnavailable"] == 0


def test_the_disruption_budget_keeps_one_pod_and_selects_ours() -> None:
    budget = manifest("PodDisruptionBudget")["spec"]
    deployment = manifest("Deployment")["spec"]
    assert budget["selector"] == deployment["selector"]
    assert 1 <= budget["minAvailable"] < deployment["replicas"]


def test_network_policy_opens_the_public_port_and_the_admin_port_to_prometheus_only() -> None:
    policy = manifest("NetworkPolicy")["spec"]
    labels = manifest("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert policy["podSelector"]["matchLabels"].items() <= labels.items()
    assert policy["policyTypes"] == ["Ingress"]
    opened: dict[int, list[Any]] = {}
    for rule in policy["ingress"]:
        for port in rule["ports"]:
            opened.setdefault(port_number(port["port"]), []).append(rule.get("from"))
    assert set(opened) == {PUBLIC_PORT, ADMIN_PORT}
    assert opened[PUBLIC_PORT] == [None]  # no `from`: everyone
    [sources] = opened[ADMIN_PORT]
    assert sources == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
        }
    ]  # one peer with both selectors: Prometheus pods in that namespace, nothing else


def test_the_image_is_a_marked_placeholder() -> None:
    assert container()["image"] == "localhost/intercept-deterrence:0.2.0"
    line = next(
        line for line in (BASE / "deployment.yaml").read_text(encoding="utf-8").splitlines()
        if "image: localhost/intercept-deterrence:0.2.0" in line
    )  # fmt: skip
    assert "FILL IN" in line


# --- the pod's command, with the ConfigMaps mounted as the kubelet mounts them -------------


def project(folder: Path, files: Mapping[str, str], generation: int) -> None:
    """Write `files` into `folder` the way the kubelet updates a ConfigMap volume: a new
    hidden timestamped folder, `..data` swapped to it by an atomic rename, each key a symlink
    through `..data`, and the previous folder removed."""
    folder.mkdir(exist_ok=True)
    fresh = folder / f"..2026_12_01_00_00_{generation:02d}.000000000"
    fresh.mkdir()
    for name, text in files.items():
        (fresh / name).write_text(text, encoding="utf-8")
    previous = (folder / "..data").resolve() if (folder / "..data").exists() else None
    (folder / "..data_tmp").symlink_to(fresh.name)
    (folder / "..data_tmp").rename(folder / "..data")
    for name in files:
        if not (folder / name).is_symlink():
            (folder / name).symlink_to(f"..data/{name}")
    if previous is not None:
        shutil.rmtree(previous)


@contextlib.contextmanager
def pod_process(argv: list[str], env: Mapping[str, str], log: Path) -> Iterator[Any]:
    """The pod's command, in a working folder of its own (the image's /var/lib/intercept,
    where the ledger spools what the unreachable test database could not take)."""
    workdir = log.parent / "workdir"
    workdir.mkdir()
    with open(log, "wb") as output:
        process = subprocess.Popen(
            argv, env=dict(env), cwd=workdir, stdin=subprocess.DEVNULL, stdout=output,
            stderr=output,
        )  # fmt: skip
    with killed_at_exit(process):
        yield process


def wait_for(url: str, status: int, process: Any, log: Path) -> None:
    deadline = time.monotonic() + 30
    while True:
        assert process.poll() is None, log.read_text(errors="replace")
        with contextlib.suppress(OSError):
            if http_status(url) == status:
                return
        assert time.monotonic() < deadline, f"{url} never {status}\n{log.read_text()}"
        time.sleep(0.1)


def test_the_pods_command_serves_reloads_a_changed_configmap_and_drains(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "intercept"
    if not script.exists():
        pytest.skip(f"no console script {script}: install the package (pip install -e .)")
    port, admin = free_port(), free_port()
    config = config_text()
    for old, new in {
        f"listen: 0.0.0.0:{PUBLIC_PORT}": f"listen: 127.0.0.1:{port}",  # loopback only here
        f"admin_listen: 0.0.0.0:{ADMIN_PORT}": f"admin_listen: 127.0.0.1:{admin}",
        f"rules: {mount('rules')['mountPath']}": f"rules: {tmp_path / 'rules'}",
        "poll_seconds: 5": "poll_seconds: 0.5",
        "upstream: http://search-frontend:8000": "upstream: http://127.0.0.1:9",  # no lookup
        "rules_cache: /var/cache/intercept": f"rules_cache: {tmp_path / 'cache'}",  # emptyDir
    }.items():
        assert old in config, old
        config = config.replace(old, new)
    project(tmp_path / "config", {"intercept.yaml": config}, 1)
    rules = dict(manifest("ConfigMap", "intercept-rules")["data"])
    project(tmp_path / "rules", rules, 1)
    metrics = tmp_path / "metrics"
    metrics.mkdir()

    env = {name: value for name, value in os.environ.items() if not name.startswith("INTERCEPT_")}
    env.update(secret_environment(FILLED))
    env.update({v["name"]: v["value"] for v in container()["env"] if "value" in v})
    env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics)  # the emptyDir
    args = list(container()["args"])
    args[args.index(CONFIG_PATH)] = str(tmp_path / "config" / "intercept.yaml")
    log = tmp_path / "pod.log"
    base, admin_base = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{admin}"
    with pod_process([str(script), *args], env, log) as pod:
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            wait_for(admin_base + container()[probe]["httpGet"]["path"], 200, pod, log)
        assert http_status(base + "/search?q=blocked+example") == 200  # the page
        assert http_status(base + "/search?q=zebra+quilt") == 502  # forwarded; no upstream
        # the ConfigMap changes: a rule added; the kubelet swaps ..data; Intercept reloads
        rules["example.yaml"] = rules["example.yaml"].replace(
            'terms: ["blocked example"]', 'terms: ["blocked example", "zebra quilt"]'
        )
        assert "zebra quilt" in rules["example.yaml"]
        project(tmp_path / "rules", rules, 2)
        wait_for(base + "/search?q=zebra+quilt", 200, pod, log)
        pod.send_signal(signal.SIGTERM)
        grace = pod_spec()["terminationGracePeriodSeconds"]
        assert pod.wait(timeout=grace) == 0, log.read_text()
    assert list(metrics.glob("*.db")), "the workers wrote no metrics files"
