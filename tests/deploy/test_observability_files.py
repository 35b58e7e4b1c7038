"""The shipped alert rules and dashboard: valid, tested with promtool, and naming only metrics
that Intercept exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from intercept.research.counters import COUNTERS
from intercept.research.counting import Counts

DEPLOY = Path(__file__).parents[2] / "deploy"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool missing (Debian package prometheus; .ci/run installs it)"
)


def _exported() -> set[str]:
    """Every sample name Intercept's metrics produce (each research counter counted once,
    from the table that declares them)."""
    counts = Counts()
    counts.rules(1, "v1")
    for counter in COUNTERS:
        counts.count(counter.name, *(f"{label}-1" for label in counter.labels))
    counts.decided(0.001)
    counts.answered(0.01)
    counts.upstream_up().set(1)  # registered by the reverse proxy only
    counts.feed()  # registered with rules_feed only
    counts.sync()
    names: set[str] = set()
    for metric in counts.registry.collect():
        names.update(sample.name for sample in metric.samples)
        names.add(metric.name)
    return names


def _metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\b(intercept_[a-z_]+)", expr))


@needs_promtool
def test_alert_rules_pass_promtool_check_and_unit_tests() -> None:
    assert PROMTOOL is not None
    for command in (["check", "rules", "alerts.yml"], ["test", "rules", "alerts_test.yml"]):
        done = subprocess.run(
            [PROMTOOL, *command], cwd=DEPLOY / "prometheus", capture_output=True, text=True,
            timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr


def test_alert_rules_name_only_exported_metrics() -> None:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    exported = _exported()
    used = {
        name for group in rules["groups"] for rule in group["rules"]
        for name in _metric_names(rule["expr"])
    }  # fmt: skip
    assert used
    assert used <= exported, used - exported


def test_dashboard_names_only_exported_metrics() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "intercept-dashboard.json").read_text())
    exported = _exported()
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    used = set().union(*(_metric_names(e) for e in exprs))
    assert len(used) >= 8
    assert used <= exported, used - exported
    assert len({panel["id"] for panel in dashboard["panels"]}) == len(dashboard["panels"])


def test_every_alert_has_a_unit_test_that_fires_it_and_the_fleet_ones_a_quiet_case() -> None:
    """Each alert of alerts.yml is expected to fire in some case of alerts_test.yml (so promtool
    checks its expression, labels and annotations), and each alert of the fleet group also
    to stay quiet in one: versions that converge in time, a recent poll, an old refusal."""
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    tests = yaml.safe_load((DEPLOY / "prometheus" / "alerts_test.yml").read_text())
    cases = [case for test in tests["tests"] for case in test.get("alert_rule_test", [])]
    fired = {case["alertname"] for case in cases if case["exp_alerts"]}
    quiet = {case["alertname"] for case in cases if not case["exp_alerts"]}
    alerts = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    assert alerts <= fired, alerts - fired
    (fleet,) = [group for group in rules["groups"] if group["name"] == "intercept-fleet"]
    fleet_alerts = {rule["alert"] for rule in fleet["rules"]}
    assert len(fleet_alerts) == 5
    assert fleet_alerts <= quiet, fleet_alerts - quiet
    for rule in fleet["rules"]:  # each says what to do, not only what happened
        assert len(rule["annotations"]["description"]) > 100, rule["alert"]
