"""A process's address-space cap (RLIMIT_AS): the OneRoster import worker
runs under one so that an import outgrowing its pod fails on its own, and
shares it with its pool."""

__layer__ = "pure"  # no framework, no I/O: tests/unit/test_layering.py

import resource

__all__ = ["cap_address_space"]


def cap_address_space(mib):
    """Caps this process's address space at ``mib`` MiB (it can only go
    down: a lowered cap cannot be raised again)."""
    limit = mib * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
