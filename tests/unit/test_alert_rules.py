"""deploy/prometheus and deploy/grafana, checked offline with Prometheus's
own ``promtool`` (Debian ``prometheus``; scripts/ensure-cluster.sh installs
it, ``make test`` runs that first — missing, these tests fail, never skip):

* the alert rules parse, and their unit tests (alerts.test.yml) pass;
* every alert has a test in which it fires, and one in which it does not;
* every metric of the platform's own that a rule or a panel reads is one
  the services export (a renamed metric would silently never alert);
* every dashboard panel's query is valid PromQL (promtool parses it as a
  recording rule).
"""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "alerts.test.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "platform-dashboard.json"
# Metrics the platform's code exports (prometheus-client names, as scraped).
OWN_PREFIXES = (
    "entrypoint_",
    "outbox_",
    "events_parked",
    "code_delivery",
    "sms_",
    "password_hash",
)


def promtool(*args, cwd=None):
    binary = shutil.which("promtool")
    assert binary, (
        "promtool missing: run `bash scripts/ensure-cluster.sh` (Debian prometheus)"
    )
    return subprocess.run(
        [binary, *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def alerts():
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {rule["alert"]: rule for group in groups for rule in group["rules"]}


def test_the_rules_parse():
    checked = promtool("check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_rules_unit_tests_pass():
    ran = promtool("test", "rules", RULE_TESTS.name, cwd=RULE_TESTS.parent)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "SUCCESS" in ran.stdout


def test_every_alert_is_tested_firing_and_quiet():
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    firing, quiet = set(), set()
    for case in tests:
        for check in case["alert_rule_test"]:
            (firing if check["exp_alerts"] else quiet).add(check["alertname"])
    names = set(alerts())
    assert names - firing == set(), "alerts never tested firing"
    assert names - quiet == set(), "alerts never tested quiet"


def _own_metrics_in(expr):
    names = set(re.findall(r"\b([a-z_]+)(?=\s*[{\[(]|\s*[)<>=!*/+-]|\s*$)", expr))
    return {n for n in names if n.startswith(OWN_PREFIXES)}


def _exported_metrics():
    """Metric names the services' code declares with prometheus-client."""
    found = set()
    for path in (ROOT / "services").rglob("*.py"):
        text = path.read_text()
        for kind, name in re.findall(
            r"\b(Counter|Gauge|Histogram)\(\s*\"([a-z_]+)\"", text
        ):
            base = name.removesuffix("_total")
            if kind == "Counter":
                found.add(base + "_total")
            elif kind == "Histogram":
                found.update({base + "_bucket", base + "_sum", base + "_count"})
            else:
                found.add(name)
    return found


def _dashboard_exprs():
    dashboard = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in dashboard["panels"] for t in p["targets"]]


@pytest.mark.parametrize("source", ["rules", "dashboard"])
def test_every_own_metric_read_is_exported(source):
    exprs = (
        [rule["expr"] for rule in alerts().values()]
        if source == "rules"
        else _dashboard_exprs()
    )
    read = set().union(*(_own_metrics_in(e) for e in exprs))
    assert read, "no platform metric found: the pattern is broken"
    assert read - _exported_metrics() == set()


def test_every_dashboard_query_is_promql(tmp_path):
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:panel_{i}", "expr": expr}
                    for i, expr in enumerate(_dashboard_exprs())
                ],
            }
        ]
    }
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump(rules))
    checked = promtool("check", "rules", str(path))
    assert checked.returncode == 0, checked.stdout + checked.stderr
