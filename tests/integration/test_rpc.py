"""RPC plumbing through a real broker: errors keep their class across the
wire, deadlines are enforced on both sides, and the gateway's health answers
503 naming a stopped service within its deadline."""

import time

import pytest
import requests
from nameko.standalone.rpc import ServiceRpcProxy

from services.common.contract.errors import (
    DeadlineExceeded,
    ServiceUnavailable,
    Throttled,
)
from services.common.plumbing import base
from services.common.plumbing.db import Database, Store
from services.common.plumbing.rpc import RpcClient, ServiceRpc, rpc
from services.gateway.service import GatewayService
from services.identity.service import IdentityService

ran = []


class PickyService(base.ServiceBase):
    name = "picky"
    db = Database(Store)

    @rpc
    def refuse(self):
        raise Throttled(
            "daily_limit_reached", {"resets_at": "2026-11-25T00:00:00+08:00"}
        )

    @rpc
    def record(self, token):
        ran.append(token)
        return token

    @rpc
    def dawdle(self, seconds):
        import eventlet

        eventlet.sleep(seconds)
        return "late"


class CallerService(base.ServiceBase):
    name = "caller"
    picky = ServiceRpc("picky", timeout=0.5)

    @rpc
    def ask(self, method, *args):
        return getattr(self.picky, method)(*args)


@pytest.fixture
def picky(container_factory, make_config):
    config = make_config("identity")
    container_factory(PickyService, config).start()
    return config


def test_service_error_arrives_as_the_same_class_with_its_data(picky):
    with ServiceRpcProxy("picky", picky) as proxy:
        with pytest.raises(Throttled) as caught:
            proxy.refuse()
    assert caught.value.code == "daily_limit_reached"
    assert caught.value.extra == {"resets_at": "2026-11-25T00:00:00+08:00"}


def test_request_whose_deadline_passed_is_refused_without_running(picky):
    with ServiceRpcProxy(
        "picky", picky, context_data={"deadline": time.time() - 1}
    ) as proxy:
        with pytest.raises(DeadlineExceeded):
            proxy.record("late")
    with ServiceRpcProxy(
        "picky", picky, context_data={"deadline": time.time() + 30}
    ) as proxy:
        assert proxy.record("on-time") == "on-time"
    assert ran == ["on-time"]


@pytest.fixture
def gateway(container_factory, make_config, web_port):
    config = make_config(
        "gateway", WEB_SERVER_ADDRESS=f"127.0.0.1:{web_port}", RPC_TIMEOUT_SECONDS=1
    )
    container = container_factory(GatewayService, config)
    container.start()
    return f"http://127.0.0.1:{web_port}"


def test_health_names_a_service_that_never_started_as_unavailable(gateway):
    started = time.monotonic()
    answer = requests.get(f"{gateway}/health", timeout=10)
    assert answer.status_code == 503
    assert time.monotonic() - started < 5
    body = answer.json()
    assert body["status"] == "degraded"
    assert body["services"]["identity"] == {
        "status": "down",
        "error": "service_unavailable",
    }


def test_rpc_to_a_stopped_service_answers_504_style_within_its_deadline(
    gateway, container_factory, make_config
):
    identity = container_factory(IdentityService, make_config("identity"))
    identity.start()
    body = requests.get(f"{gateway}/health", timeout=10).json()
    assert body["services"]["identity"]["status"] == "up"
    assert body["services"]["identity"]["database"] == "ok"

    identity.stop()  # its queue stays: requests now wait for nobody
    started = time.monotonic()
    answer = requests.get(f"{gateway}/health", timeout=10)
    elapsed = time.monotonic() - started
    assert answer.status_code == 503
    assert answer.json()["services"]["identity"] == {
        "status": "down",
        "error": "deadline_exceeded",
    }
    assert elapsed < 5, f"health took {elapsed:.1f}s"


def test_a_call_that_times_out_renews_the_request_channel_and_calls_go_on(
    picky, container_factory
):
    """On a cluster, a channel can stay stuck on a dead quorum-queue leader
    (rpc.py's RpcClient says how): a timeout renews the request channel,
    at most once every RENEW_AFTER_SECONDS, without failing other calls."""
    caller = container_factory(CallerService, picky)
    caller.start()
    client = next(e for e in caller.extensions if isinstance(e, RpcClient))
    with ServiceRpcProxy("caller", picky) as proxy:
        assert proxy.ask("record", "before") == "before"
        first = client._channel
        with pytest.raises(DeadlineExceeded):
            proxy.ask("dawdle", 1.5)
        deadline = time.monotonic() + 3
        while client._channel is first and time.monotonic() < deadline:
            time.sleep(0.05)
        renewed = client._channel
        assert renewed is not first and renewed.channel_id != first.channel_id
        assert not first.is_open
        # A second timeout right away does not renew again.
        with pytest.raises(DeadlineExceeded):
            proxy.ask("dawdle", 1.5)
        time.sleep(0.8)
        assert client._channel is renewed
        assert proxy.ask("record", "after") == "after"


def test_a_connection_silent_while_calls_time_out_is_replaced_from_the_next_broker(
    container_factory, make_config, monkeypatch
):
    """A node in a partition's minority keeps the connection open but routes
    nothing: after SILENT_SECONDS without any reply and repeated timeouts,
    the client reconnects, starting from the next broker of its list."""
    monkeypatch.setattr(RpcClient, "SILENT_SECONDS", 1.0)
    config = make_config("identity")
    picky_container = container_factory(PickyService, config)
    picky_container.start()
    two_brokers = {**config, "AMQP_URI": f"{config['AMQP_URI']};{config['AMQP_URI']}"}
    caller = container_factory(CallerService, two_brokers)
    caller.start()
    client = next(e for e in caller.extensions if isinstance(e, RpcClient))
    with ServiceRpcProxy("caller", config) as proxy:
        assert proxy.ask("record", "heard") == "heard"
        first = client._connection
        picky_container.stop()  # its queue stays: calls now wait for nobody
        for _ in range(2):
            with pytest.raises(DeadlineExceeded):
                proxy.ask("record", "unheard")
        # Silent for more than a second now: the next timeout reconnects
        # (a call pending then fails at once, 503, as on any lost connection).
        time.sleep(0.5)
        with pytest.raises((DeadlineExceeded, ServiceUnavailable)):
            proxy.ask("record", "unheard")
        deadline = time.monotonic() + 3
        while client._connection in (first, None) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client._connection not in (first, None)
        assert client._first_broker == 1
        container_factory(PickyService, config).start()
        assert proxy.ask("record", "again") == "again"
