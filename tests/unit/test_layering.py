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


# Entrypoint decorators whose unit of work must be the platform's (replayed
# on a conflict or a lost connection, 503 while the database stays away):
# Nameko's own are wrapped once, in plumbing, and used from there. (Event
# handlers: plumbing's for every one with a database; the gateway, which has
# none, listens to its session broadcasts with Nameko's.)
WRAPPED_ENTRYPOINTS = {
    "nameko.timer.timer": "services/common/plumbing/timers.py",
    "nameko.rpc.rpc": "services/common/plumbing/rpc.py",
}


def test_entrypoints_come_from_plumbing_not_nameko():
    for path in python_files():
        names = imported_names(ast.parse(path.read_text()), module_name(path))
        relative = str(path.relative_to(ROOT))
        for name, home in WRAPPED_ENTRYPOINTS.items():
            assert name not in names or relative == home, (
                f"{relative} uses {name}: use the one in {home}"
            )


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


# -- services/common: three parts, imports only downwards, no circle ----------
COMMON = ROOT / "services" / "common"
PART_ORDER = {"contract": 0, "rules": 1, "plumbing": 2}


def _module_of(name):
    """The module file an imported name lives in (``a.b.c`` may be module
    ``a.b`` and its attribute ``c``), or None outside the tree."""
    parts = name.split(".")
    while parts:
        if (ROOT / Path(*parts)).with_suffix(".py").exists():
            return ".".join(parts)
        parts = parts[:-1]
    return None


def common_imports():
    """``{module: {common modules it imports}}`` for every module of
    ``services/common``, at whatever depth."""
    graph = {}
    for path in sorted(COMMON.rglob("*.py")):
        if path.name == "__init__.py":
            continue
        name = module_name(path)
        package = name.rsplit(".", 1)[0]
        found = imported_names(ast.parse(path.read_text()), package)
        graph[name] = {
            module
            for module in map(_module_of, found)
            if module and module.startswith("services.common.") and module != name
        }
    return graph


def test_common_is_contract_rules_and_plumbing_only():
    loose = sorted(p.name for p in COMMON.glob("*.py") if p.name != "__init__.py")
    assert loose == [], f"modules outside the three parts: {loose}"
    assert {
        p.name for p in COMMON.iterdir() if p.is_dir() and p.name in PART_ORDER
    } == set(PART_ORDER)


def test_common_parts_import_downwards_only():
    """contract imports no other part, rules only the contract, plumbing
    both: a part never imports a part above it."""
    wrong = []
    for module, imported in common_imports().items():
        part = module.split(".")[2]
        for other in imported:
            if PART_ORDER.get(other.split(".")[2], -1) > PART_ORDER.get(part, -1):
                wrong.append(f"{module} -> {other}")
    assert not wrong, wrong


def test_common_has_no_import_circle():
    graph = common_imports()
    state = {}

    def visit(node, trail):
        if state.get(node) == "done":
            return
        if state.get(node) == "open":
            cycle = trail[trail.index(node) :] + [node]
            pytest.fail("import circle: " + " -> ".join(cycle))
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            visit(nxt, trail + [node])
        state[node] = "done"

    assert len(graph) > 20  # the scan sees the modules
    for node in sorted(graph):
        visit(node, [])


def test_the_circle_check_sees_a_circle():
    """The check itself, on a made-up graph."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}}
    seen = []

    def cyclic(node, trail):
        if node in trail:
            seen.append(trail[trail.index(node) :] + [node])
            return
        for nxt in graph[node]:
            cyclic(nxt, trail + [node])

    cyclic("a", [])
    assert seen == [["a", "b", "c", "a"]]


# -- composition roots: self-contained mixins ---------------------------------
def _class_defs(path):
    return {
        n.name: n
        for n in ast.parse(path.read_text()).body
        if isinstance(n, ast.ClassDef)
    }


def _base_name(node):
    return node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", None)


def composition(service):
    """``(root class, [(module path, mixin class)])`` of a service: the
    classes its ``service.py`` combines, found in the service's modules."""
    folder = ROOT / "services" / service
    defs = {}
    for path in folder.glob("*.py"):
        for name, node in _class_defs(path).items():
            defs.setdefault(name, (path, node))
    root = next(
        node
        for node in _class_defs(folder / "service.py").values()
        if any(_base_name(b) and _base_name(b) in defs for b in node.bases)
    )
    mixins = [defs[_base_name(b)] for b in root.bases if _base_name(b) in defs]
    return root, mixins


def _methods(node):
    return {n.name for n in node.body if isinstance(n, ast.FunctionDef)}


def _self_names(node):
    return {
        sub.attr
        for sub in ast.walk(node)
        if isinstance(sub, ast.Attribute)
        and isinstance(sub.value, ast.Name)
        and sub.value.id == "self"
    }


@pytest.mark.parametrize("service", SERVICES)
def test_service_py_is_only_a_composition_root(service):
    """The service class declares providers and combines mixins: it defines
    no method of its own."""
    root, mixins = composition(service)
    assert mixins, f"{service}: no entrypoint mixins found"
    assert not _methods(root), f"{service}.service defines {sorted(_methods(root))}"


@pytest.mark.parametrize("service", SERVICES)
def test_no_mixin_calls_what_another_mixin_defines(service):
    """A mixin uses its own methods and the service's providers; what two
    mixins share is a provider or a domain function, never a method one of
    them defines (no import would show that tie)."""
    root, mixins = composition(service)
    owner = {}
    for _, node in mixins:
        for name in _methods(node):
            owner.setdefault(name, set()).add(node.name)
    crossing = sorted(
        f"{node.name}.{name} (defined in {sorted(owner[name])})"
        for _, node in mixins
        for name in _self_names(node)
        if name in owner and node.name not in owner[name]
    )
    assert not crossing, crossing


def _provided(root):
    """What the root class declares as class attributes (its providers)."""
    names = set()
    for stmt in root.body:
        if isinstance(stmt, ast.Assign):
            names.update(t.id for t in stmt.targets if isinstance(t, ast.Name))
    return names


# What every service gets from services.common.plumbing.base.ServiceBase and
# Nameko itself.
INHERITED = {"name", "request_context", "metrics", "key_guard", "container"}


@pytest.mark.parametrize("service", SERVICES)
def test_what_a_mixin_uses_of_self_is_its_own_or_a_provider(service):
    """Every ``self.x`` in a mixin is a method of that mixin or a provider
    the root declares — so a renamed provider or a moved helper fails here,
    not at run time."""
    root, mixins = composition(service)
    provided = _provided(root) | INHERITED
    missing = sorted(
        f"{node.name}: self.{name}"
        for _, node in mixins
        for name in _self_names(node)
        if name not in _methods(node) and name not in provided
    )
    assert not missing, missing


@pytest.mark.parametrize("service", SERVICES)
def test_no_provider_shadows_an_entrypoint(service):
    """A provider named like a mixin's method would silently replace it (an
    RPC named ``inbox`` and an ``inbox`` provider)."""
    root, mixins = composition(service)
    clash = sorted(
        _provided(root) & set().union(*(_methods(node) for _, node in mixins))
    )
    assert not clash, clash


def test_the_mixin_checks_see_a_cross_call():
    """The checks themselves, on made-up source."""
    tree = ast.parse(
        "class A:\n    def a(self):\n        self.b()\n"
        "class B:\n    def b(self):\n        self.db.x()\n"
    )
    a, b = tree.body
    assert "b" in _self_names(a) and "b" in _methods(b) and "b" not in _methods(a)


def event_handlers():
    """``(path, method name, event type)`` of every ``@event_handler``."""
    found = []
    for path in python_files():
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.FunctionDef):
                continue
            for deco in node.decorator_list:
                if (
                    isinstance(deco, ast.Call)
                    and _base_name(deco.func) == "event_handler"
                    and len(deco.args) >= 2
                    and isinstance(deco.args[1], ast.Constant)
                ):
                    found.append((path, node.name, deco.args[1].value))
    return found


def test_every_event_handler_is_named_on_its_event():
    handlers = event_handlers()
    assert len(handlers) > 15  # the scan finds the platform's handlers
    wrong = sorted(
        f"{module_name(path)}.{name} handles {event}"
        for path, name, event in handlers
        if name != f"on_{event}"
    )
    assert not wrong, wrong
