"""Configuration: Nameko's ``config.yml`` files with ``${ENV:default}``
substitution, readable outside ``nameko run`` too (tests, migrations,
benchmarks) so every tool sees exactly what the service sees."""

import base64
import binascii

import yaml
from nameko.extensions import DependencyProvider

__all__ = ["load_config", "development_keys", "refuse_development_keys", "KeyGuard"]

# Every config.yml falls back to keys that decode to "dev-only-…" so that
# `make run` works out of the box; a deployment must never run on them.
_DEVELOPMENT_KEY = b"dev-only"


def load_config(path):
    """Parse a service config file the way ``nameko run --config`` does."""
    # Nameko registers its ``!env_var`` resolver on yaml.SafeLoader; doing it
    # twice is harmless.
    from nameko.cli.main import setup_yaml_parser

    setup_yaml_parser()
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def _truthy(value):
    return str(value or "").strip().lower() in ("1", "true", "yes", "on")


def development_keys(config):
    """Names of the settings that hold one of the shipped development keys."""
    found = []
    for name, value in (config or {}).items():
        if not isinstance(value, str) or len(value) < 12:
            continue
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            continue
        if raw.startswith(_DEVELOPMENT_KEY):
            found.append(name)
    return sorted(found)


def refuse_development_keys(config):
    """Raise unless no development key is configured, or development mode is
    said explicitly (``DEVELOPMENT_MODE=true``: `make run`, the tests and the
    e2e platform say it; nothing under deploy/ does)."""
    names = development_keys(config)
    if names and not _truthy(config.get("DEVELOPMENT_MODE")):
        raise RuntimeError(
            "refusing to start with development keys in "
            + ", ".join(names)
            + ": set real keys (see deploy/), or DEVELOPMENT_MODE=true on a"
            " development machine"
        )
    return names


class KeyGuard(DependencyProvider):
    """Checks the service's keys as its container starts (see
    ``refuse_development_keys``): the service never runs on the shipped
    development keys unless development mode is said."""

    def setup(self):
        refuse_development_keys(self.container.config)
