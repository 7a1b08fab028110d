"""The services the floor benchmark runs (never deployed).

* ``BareGateway`` → ``BareEcho``: plain Nameko 2.14 — ``@http`` → ``RpcProxy``
  → a method returning its argument. The hardware-and-framework floor.
* ``HopGateway`` → ``HopEcho``: the same ``@http`` and echo, but over this
  project's RPC hop (``ServiceRpc`` → ``@rpc``): the hop's own gain.
* ``FloorGateway`` → ``FloorStore``: the same path through this project's
  plumbing — problem+json handler, request ids, metrics, deadline RPC,
  pooled green psycopg2 — ending in a one-row INSERT. Every product
  endpoint costs at least this much.
"""

import json

from nameko.rpc import RpcProxy
from nameko.rpc import rpc as plain_rpc
from nameko.web.handlers import http

from services.common.plumbing import base
from services.common.plumbing.context import RequestContext
from services.common.plumbing.db import Database, Store
from services.common.plumbing.metrics import Metrics
from services.common.plumbing.rpc import ServiceRpc, rpc
from services.gateway.http import endpoint

INSERT_ROW_SQL = "INSERT INTO bench_rows (note) VALUES (%(note)s) RETURNING id"


class BareEcho:
    name = "bench_bare_echo"

    @plain_rpc
    def echo(self, value):
        return value


class BareGateway:
    name = "bench_bare_gateway"
    echo = RpcProxy("bench_bare_echo")

    @http("POST", "/bare")
    def bare(self, request):
        return json.dumps({"echo": self.echo.echo(request.get_data(as_text=True))})


class HopEcho:
    name = "bench_hop_echo"

    @rpc
    def echo(self, value):
        return value


class HopGateway:
    name = "bench_hop_gateway"
    echo = ServiceRpc("bench_hop_echo")

    @http("POST", "/hop")
    def hop(self, request):
        return json.dumps({"echo": self.echo.echo(request.get_data(as_text=True))})


class FloorStoreDb(Store):
    def insert_row(self, note):
        return self.fetchone(INSERT_ROW_SQL, {"note": note})["id"]


class FloorStore(base.ServiceBase):
    name = "bench_floor_store"
    db = Database(FloorStoreDb)

    @rpc
    def insert_row(self, note):
        row_id = self.db.insert_row(note)
        self.db.commit()
        return row_id


class FloorGateway:
    name = "bench_floor_gateway"
    request_context = RequestContext()
    metrics = Metrics()
    store = ServiceRpc("bench_floor_store")

    @endpoint("POST", "/floor", summary="benchmark floor")
    def floor(self, request):
        return 201, {"id": self.store.insert_row(request.get_data(as_text=True)[:64])}
