"""How one dependency provider reaches another of the same service: by the
attribute name the service class gives it, so the tie is written where the
providers are declared (``db = Database(...)``; ``outbox = Outbox()`` relays
from ``db``)."""

__all__ = ["sibling"]


def sibling(provider, attr_name):
    """The provider bound as ``attr_name`` in ``provider``'s container."""
    for dep in provider.container.dependencies:
        if dep.attr_name == attr_name:
            return dep
    raise RuntimeError(
        f"{type(provider).__name__} of {provider.container.service_name} needs "
        f"a {attr_name!r} dependency provider beside it"
    )
