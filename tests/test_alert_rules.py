"""The alert rules (deploy/alerts.yml) are valid, pass their promtool unit tests, are each tested firing and
not firing, and each has its section in the runbook. promtool comes with Debian's `prometheus` package,
which scripts/bootstrap.sh installs."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    promtool = shutil.which("promtool")
    if promtool is None:
        raise AssertionError("promtool not found: install Debian's `prometheus` package (scripts/bootstrap.sh does)")
    return subprocess.run([promtool, *args], cwd=DEPLOY, capture_output=True, text=True, timeout=60, check=False)


def _alert_names() -> list[str]:
    groups = yaml.safe_load((DEPLOY / "alerts.yml").read_text())["groups"]
    return [rule["alert"] for group in groups for rule in group["rules"] if "alert" in rule]


def _alert_cases() -> list[dict[str, Any]]:
    tests = yaml.safe_load((DEPLOY / "alerts.test.yml").read_text())["tests"]
    return [case for test in tests for case in test.get("alert_rule_test", [])]


def test_the_rules_and_the_scrape_config_are_valid() -> None:
    for args in (("check", "rules", "alerts.yml"), ("check", "config", "prometheus.yml")):
        done = _promtool(*args)
        assert done.returncode == 0, done.stdout + done.stderr


def test_the_rules_pass_their_promtool_unit_tests() -> None:
    done = _promtool("test", "rules", "alerts.test.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


@pytest.mark.parametrize("alert", _alert_names())
def test_each_alert_is_tested_firing_and_not_firing(alert: str) -> None:
    cases = [case for case in _alert_cases() if case["alertname"] == alert]
    assert any(case["exp_alerts"] for case in cases), f"no test where {alert} fires"
    assert any(not case["exp_alerts"] for case in cases), f"no test where {alert} must stay silent"


@pytest.mark.parametrize("alert", _alert_names())
def test_each_alert_has_its_runbook_section(alert: str) -> None:
    runbook = (ROOT / "docs" / "runbook.md").read_text()
    assert f"### {alert}" in runbook, f"docs/runbook.md has no '### {alert}' section"
