"""The layering rules of the codebase, checked from the tree itself:

* pure modules — every ``domain.py``, and every module that declares
  ``__layer__ = "pure"`` — import neither Nameko, psycopg2, eventlet nor the
  broker client, anywhere in the file (in functions too), nor a service's
  entrypoints, store or dependencies; and importing one in a fresh
  interpreter loads none of those (what it imports, transitively);
* services never import each other, in any import form.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ["identity", "verification", "recovery", "registry_sync", "gateway"]
FRAMEWORK = ("nameko", "psycopg2", "eventlet", "kombu", "amqp")
IMPURE_SERVICE_PARTS = ("service", "store", "dependencies")


def module_name(path):
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


def declares_pure(tree):
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__layer__" for t in node.targets
        ):
            return isinstance(node.value, ast.Constant) and node.value.value == "pure"
    return False


def python_files():
    return sorted((ROOT / "services").rglob("*.py"))


def pure_modules():
    found = []
    for path in python_files():
        tree = ast.parse(path.read_text())
        if path.name == "domain.py" or declares_pure(tree):
            found.append(path)
    return found


def imported_names(tree, package):
    """Every module an import statement anywhere in ``tree`` names, with
    ``from x import y`` giving both ``x`` and ``x.y``; relative imports
    resolved against ``package``."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


PURE = pure_modules()


def test_the_pure_modules_are_found_in_the_tree():
    names = {module_name(p) for p in PURE}
    # The rule, not a list: these must be among what it finds.
    assert {
        "services.identity.domain",
        "services.verification.domain",
        "services.common.rules.realname",
        "services.identity.passwords",
        "services.common.rules.masking",
    } <= names


@pytest.mark.parametrize("path", PURE, ids=module_name)
def test_pure_module_names_no_framework_import_anywhere(path):
    tree = ast.parse(path.read_text())
    package = module_name(path).rsplit(".", 1)[0]
    bad = sorted(
        name
        for name in imported_names(tree, package)
        if name.split(".")[0] in FRAMEWORK
        or (
            name.startswith("services.")
            and len(name.split(".")) >= 3
            and name.split(".")[2] in IMPURE_SERVICE_PARTS
        )
    )
    assert not bad, f"{module_name(path)} imports {bad}"


@pytest.mark.parametrize("path", PURE, ids=module_name)
def test_pure_module_loads_no_framework(path):
    probe = (
        f"import sys, {module_name(path)}; "
        f"bad = [m for m in {FRAMEWORK!r} if m in sys.modules]; "
        "print(','.join(bad))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert out == "", f"{module_name(path)} pulls in {out}"


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_imports_no_other_service(service):
    others = {s for s in SERVICES if s != service}
    for path in (ROOT / "services" / service).rglob("*.py"):
        names = imported_names(ast.parse(path.read_text()), module_name(path))
        crossing = sorted(
            n for n in names if n.startswith("services.") and n.split(".")[1] in others
        )
        assert not crossing, f"{path} imports {crossing}"


def test_the_import_scan_sees_every_form():
    """The scanner itself: function-level, ``from services import x`` and
    relative forms are all seen."""
    tree = ast.parse(
        "def f():\n    import nameko.rpc\n"
        "from services import identity\n"
        "from ..verification import store\n"
    )
    names = imported_names(tree, "services.gateway")
    assert {"nameko.rpc", "services.identity", "services.verification.store"} <= names
