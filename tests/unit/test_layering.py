"""The layering rules of the codebase, checked: domain modules import neither
Nameko nor psycopg2, and services never import each other."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOMAIN_MODULES = [
    "services.verification.domain",
    "services.identity.realname",
    "services.common.masking",
    "services.common.vocabulary",
]
SERVICES = ["identity", "verification", "recovery", "registry_sync", "gateway"]


@pytest.mark.parametrize("module", DOMAIN_MODULES)
def test_domain_module_loads_without_nameko_or_psycopg2(module):
    probe = (
        f"import sys, {module}; "
        "bad = [m for m in ('nameko', 'psycopg2', 'eventlet') if m in sys.modules]; "
        "print(','.join(bad))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert out == "", f"{module} pulls in {out}"


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_imports_no_other_service(service):
    others = [s for s in SERVICES if s != service]
    pattern = re.compile(
        r"^\s*(from|import)\s+services\.(%s)\b" % "|".join(others), re.M
    )
    for path in (ROOT / "services" / service).rglob("*.py"):
        assert not pattern.search(path.read_text()), path
