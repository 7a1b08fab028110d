"""Configuration: Nameko's ``config.yml`` files with ``${ENV:default}``
substitution, readable outside ``nameko run`` too (tests, migrations,
benchmarks) so every tool sees exactly what the service sees."""

import yaml

__all__ = ["load_config"]


def load_config(path):
    """Parse a service config file the way ``nameko run --config`` does."""
    # Nameko registers its ``!env_var`` resolver on yaml.SafeLoader; doing it
    # twice is harmless.
    from nameko.cli.main import setup_yaml_parser

    setup_yaml_parser()
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh)
