"""The project's RPC hop through the real broker: it interoperates with
stock Nameko in both directions, an unroutable call fails at once (not at
its deadline), and a broker restart fails the calls in flight at once while
later calls succeed after the client reconnects by itself."""

import subprocess
import time

import eventlet
import pytest
from eventlet.event import Event
from nameko.rpc import rpc as stock_rpc
from nameko.standalone.rpc import ClusterRpcProxy

from services.common.contract.errors import (
    DeadlineExceeded,
    ServiceUnavailable,
    Throttled,
)
from services.common.plumbing.rpc import ServiceRpc, rpc
from services.common.plumbing.testing import check_infra, wait_until


class HopEcho:
    """A callee on the project's ``@rpc``."""

    name = "hop_echo"

    @rpc
    def echo(self, value, pause=0.0):
        eventlet.sleep(pause)
        return {"echo": value}

    @rpc
    def refuse(self):
        raise Throttled("daily_limit_reached", {"retry_after": 7})


class StockEcho:
    """A callee on stock Nameko's ``@rpc``."""

    name = "stock_echo"

    @stock_rpc
    def echo(self, value):
        return {"stock": value}


class HopCaller:
    """A caller on the project's ``ServiceRpc``."""

    name = "hop_caller"
    ours = ServiceRpc("hop_echo", timeout=30)
    stock = ServiceRpc("stock_echo", timeout=5)
    nobody = ServiceRpc("no_such_service", timeout=30)
    quick = ServiceRpc("hop_echo", timeout=0.3)

    @rpc
    def via_ours(self, value, pause=0.0):
        return self.ours.echo(value, pause=pause)

    @rpc
    def via_stock(self, value):
        return self.stock.echo(value)

    @rpc
    def refused(self):
        return self.ours.refuse()

    @rpc
    def to_nobody(self):
        return self.nobody.echo(1)

    @rpc
    def too_slow(self):
        return self.quick.echo(1, pause=2)


def call_in(container, method, *args, **kwargs):
    """Run ``method`` as a worker of ``container`` and return its result (or
    raise its error). Unlike nameko's ``entrypoint_hook`` it is safe for
    many concurrent calls of one method, and needs no broker on the way in."""
    entrypoint = next(e for e in container.entrypoints if e.method_name == method)
    done = Event()

    def handle_result(worker_ctx, result, exc_info):
        done.send((result, exc_info))
        return result, exc_info

    container.spawn_worker(entrypoint, args, kwargs, handle_result=handle_result)
    result, exc_info = done.wait()
    if exc_info is not None:
        raise exc_info[1]
    return result


@pytest.fixture
def hop(container_factory, rabbit_config):
    config = {**rabbit_config, "max_workers": 40}
    containers = {
        cls.name: container_factory(cls, config)
        for cls in (HopEcho, StockEcho, HopCaller)
    }
    for container in containers.values():
        container.start()
    return config, containers


def test_stock_cluster_proxy_calls_a_service_on_the_project_hop(hop):
    config, _ = hop
    with ClusterRpcProxy(config) as cluster:
        assert cluster.hop_echo.echo("hi") == {"echo": "hi"}
        with pytest.raises(Throttled) as caught:
            cluster.hop_echo.refuse()
    assert caught.value.code == "daily_limit_reached"
    assert caught.value.extra == {"retry_after": 7}


def test_the_project_hop_calls_a_stock_nameko_service(hop):
    _, containers = hop
    assert call_in(containers["hop_caller"], "via_stock", "x") == {"stock": "x"}


def test_errors_keep_their_class_and_data_over_the_hop(hop):
    _, containers = hop
    with pytest.raises(Throttled) as caught:
        call_in(containers["hop_caller"], "refused")
    assert caught.value.extra == {"retry_after": 7}


def test_an_unroutable_call_fails_at_once_not_at_its_deadline(hop):
    _, containers = hop
    started = time.monotonic()
    with pytest.raises(ServiceUnavailable) as caught:
        call_in(containers["hop_caller"], "to_nobody")
    assert caught.value.extra == {"service": "no_such_service"}
    assert time.monotonic() - started < 2  # its deadline was 30 s


def test_a_call_past_its_deadline_is_deadline_exceeded(hop):
    _, containers = hop
    with pytest.raises(DeadlineExceeded):
        call_in(containers["hop_caller"], "too_slow")


def test_many_calls_in_flight_each_get_their_own_reply(hop):
    _, containers = hop
    pool = eventlet.GreenPool(30)

    def one(n):
        return call_in(containers["hop_caller"], "via_ours", n, pause=0.05)

    assert list(pool.imap(one, range(120))) == [{"echo": n} for n in range(120)]


def rabbitmqctl(*args):
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=120)


def test_a_broker_restart_fails_calls_in_flight_at_once_then_calls_succeed(hop):
    _, containers = hop
    caller = containers["hop_caller"]
    outcomes = []

    def slow_call(n):
        try:
            # The callee would answer after 15 s: only a dropped connection
            # can end these calls sooner (and the deadline is 30 s).
            outcomes.append(("ok", call_in(caller, "via_ours", n, pause=15)))
        except ServiceUnavailable:
            outcomes.append(("unavailable", time.monotonic()))
        except Exception as exc:  # anything else is a failure of the test
            outcomes.append(("other", repr(exc)))

    in_flight = [eventlet.spawn(slow_call, n) for n in range(10)]
    eventlet.sleep(0.5)  # all ten published and waiting on the callee
    stopped_at = time.monotonic()
    try:
        rabbitmqctl("stop_app")
        for thread in in_flight:
            thread.wait()
    finally:
        rabbitmqctl("start_app")
        rabbitmqctl("await_startup")
        check_infra()
    # Every pending call failed as soon as the connection went (their
    # deadline was 30 s), none hung and none got another kind of error.
    assert [kind for kind, _ in outcomes] == ["unavailable"] * 10, outcomes
    assert max(at for _, at in outcomes) - stopped_at < 14

    def later_call_succeeds():
        try:
            return call_in(caller, "via_ours", "after") == {"echo": "after"}
        except (ServiceUnavailable, DeadlineExceeded):
            return False

    # The client (and the callee's consumer) reconnect by themselves.
    wait_until(later_call_succeeds, timeout=60, interval=0.5, message="reconnection")
    assert [call_in(caller, "via_ours", n) for n in range(20)] == [
        {"echo": n} for n in range(20)
    ]


def test_a_call_with_the_wrong_arguments_is_an_invalid_request(hop):
    config, _ = hop
    from services.common.contract.errors import InvalidRequest

    with ClusterRpcProxy(config) as cluster:
        with pytest.raises(InvalidRequest) as caught:
            cluster.hop_echo.echo()  # `value` is required
        assert "value" in str(caught.value.extra["errors"]["_call"])
        with pytest.raises(InvalidRequest):
            cluster.hop_echo.echo(1, 2, 3, 4)
        assert cluster.hop_echo.echo(5) == {"echo": 5}


def test_a_stop_while_the_read_loop_waits_ends_the_loop_quietly(hop):
    # Seen when a gateway stopped under load: stop() dropped the connection
    # while the read loop waited for a frame, the wait then timed out, and
    # the loop died on the dropped connection ("thread exited with error").
    import socket

    from services.common.plumbing.rpc import RpcClient

    _, containers = hop
    caller = containers["hop_caller"]
    assert call_in(caller, "via_ours", "up") == {"echo": "up"}  # connected
    client = next(e for e in caller.extensions if isinstance(e, RpcClient))
    connection = client._connection

    def stopped_as_the_wait_times_out(timeout):
        client.stop()
        raise socket.timeout("timed out")

    connection.drain_events = stopped_as_the_wait_times_out
    with eventlet.Timeout(5):
        client._reader.wait()  # raised AttributeError before the fix
