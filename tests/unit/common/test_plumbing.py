"""Small plumbing pieces: request ids, config substitution, the clock, the
event envelope."""

from datetime import datetime, timezone

import pytest
from marshmallow import ValidationError

from services.common.contract.events import EnvelopeSchema
from services.common.plumbing.clock import FakeClock
from services.common.plumbing.config import load_config
from services.common.plumbing.context import clean_request_id


def test_caller_request_id_is_kept_when_safe_and_replaced_when_not():
    assert clean_request_id("abc-123") == "abc-123"
    assert clean_request_id(None) != clean_request_id(None)
    for bad in ("has space", "x" * 65, "new\nline", "<script>"):
        assert clean_request_id(bad) != bad


def test_config_takes_env_values_and_defaults(tmp_path, monkeypatch):
    path = tmp_path / "config.yml"
    path.write_text("A: ${SOME_A:fallback}\nB: ${SOME_B:3}\n")
    monkeypatch.setenv("SOME_A", "from-env")
    monkeypatch.delenv("SOME_B", raising=False)
    assert load_config(path) == {"A": "from-env", "B": 3}


@pytest.mark.parametrize(
    "service", ["identity", "verification", "recovery", "registry_sync", "gateway"]
)
def test_every_service_config_loads(service, monkeypatch):
    monkeypatch.delenv("AMQP_URI", raising=False)
    config = load_config(f"services/{service}/config.yml")
    assert config["AMQP_URI"].startswith("amqp://")
    assert service == "gateway" or config["DB_URI"].startswith("postgresql://")


def test_fake_clock_moves_only_when_told():
    clock = FakeClock(datetime(2026, 11, 24, 15, 59, 59, tzinfo=timezone.utc))
    assert clock() == clock()
    assert clock.advance(seconds=1).hour == 16
    with pytest.raises(ValueError):
        FakeClock(datetime(2026, 1, 1))


def test_envelope_requires_an_event_id_and_aware_time():
    good = {
        "event_id": "0b6f0a52-8f43-4c38-9a2b-0c1f33b7c9b1",
        "event_type": "x",
        "source": "identity",
        "occurred_at": "2026-11-24T00:00:00+00:00",
        "payload": {},
    }
    assert EnvelopeSchema().load(good)["source"] == "identity"
    with pytest.raises(ValidationError):
        EnvelopeSchema().load({**good, "event_id": "nope"})
    with pytest.raises(ValidationError):
        EnvelopeSchema().load({**good, "occurred_at": "2026-11-24T00:00:00"})


def test_verification_event_payloads_are_registered_and_carry_no_code():
    from services.common.contract.events import PAYLOAD_SCHEMAS

    for event in ("code_issued", "code_verified", "code_delivery_failed"):
        fields_ = PAYLOAD_SCHEMAS[event]().fields
        assert "code" not in fields_ and "destination" not in fields_
        assert "destination_masked" in fields_


def test_times_are_loaded_as_the_utc_instant_they_name():
    from datetime import datetime, timezone

    from marshmallow import Schema, ValidationError

    from services.common.contract.fields import UtcDateTime

    class At(Schema):
        at = UtcDateTime(required=True)

    # +17:39 is valid ISO 8601 but beyond PostgreSQL's ±15:59.
    loaded = At().load({"at": "0208-12-31T03:24:54+17:39"})["at"]
    assert loaded == datetime(208, 12, 30, 9, 45, 54, tzinfo=timezone.utc)
    assert loaded.utcoffset().total_seconds() == 0
    try:
        At().load({"at": "0001-01-01T00:30:00+01:00"})
    except ValidationError as exc:
        assert "at" in exc.messages
    else:
        raise AssertionError("a time before year 1 in UTC was accepted")


def test_every_event_a_service_publishes_has_a_contract_schema():
    """``Store.add_event`` checks payloads against the contract's schema for
    the event type; an event type without one would go out unchecked."""
    import ast
    from pathlib import Path

    from services.common.contract.events import PAYLOAD_SCHEMAS

    published = set()
    for path in (Path(__file__).resolve().parents[3] / "services").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "add_event"
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                published.add(node.args[0].value)
    assert len(published) > 15  # the scan finds the platform's events
    assert published <= set(PAYLOAD_SCHEMAS), published - set(PAYLOAD_SCHEMAS)
