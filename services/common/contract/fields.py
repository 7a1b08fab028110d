"""Marshmallow fields shared by the services' and the gateway's schemas."""

__layer__ = "pure"  # no framework, no I/O: tests/unit/test_layering.py

from datetime import timezone

from marshmallow import ValidationError, fields

__all__ = ["UtcDateTime", "StrictBoolean", "require_one_way_in"]


class StrictBoolean(fields.Boolean):
    """JSON ``true``/``false`` only: marshmallow's Boolean also takes
    ``"yes"``, ``1`` or ``"on"``, which the published schema does not allow
    and a school system's typo should not slip through."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


class UtcDateTime(fields.AwareDateTime):
    """An ISO 8601 time with its offset, loaded as UTC. Python accepts
    offsets up to ±23:59 but PostgreSQL only up to ±15:59, so a time is
    stored as the instant it names, never with the offset it came with."""

    def _deserialize(self, value, attr, data, **kwargs):
        moment = super()._deserialize(value, attr, data, **kwargs)
        try:
            return moment.astimezone(timezone.utc)
        except (OverflowError, ValueError):
            raise ValidationError("Not a representable time.") from None


def require_one_way_in(data):
    """A login is ``login`` + ``password`` or ``provider`` + ``assertion``,
    exactly one of the two (the gateway's and identity's schemas both)."""
    by_password = data.get("login") is not None and data.get("password") is not None
    by_provider = data.get("provider") is not None and data.get("assertion") is not None
    if by_password == by_provider:
        raise ValidationError("give login + password, or provider + assertion")
