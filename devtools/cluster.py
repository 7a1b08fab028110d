"""The platform on clusters, on this one machine (``make cluster``):

                           clients, docs, curl lines
                                      │ 127.0.0.1:8000
                    ┌─────────────────┴──────────────────┐
                    │ HAProxy  (stats :8404/stats)       │
                    │  :8000 → gateway-1 :8001           │  GET /health/live
                    │          gateway-2 :8002           │
                    │  :5440 → the PostgreSQL primary    │  Patroni GET /primary
                    └──────┬───────────────────┬─────────┘
            ┌──────────────┘                   └──────────────┐
  identity ×2 · verification ×2 · recovery ×2 · registry_sync ×2 · gateway ×2
            │ AMQP_URI = all three nodes             │ DB_URI = HAProxy :5440
  ┌─────────┴──────────────────────┐  ┌──────────────┴───────────────────────┐
  │ RabbitMQ, a network namespace  │  │ Patroni pg1 (REST :8011) PG :5441    │
  │ each (BrokerNet):              │  │ Patroni pg2 (REST :8012) PG :5442    │
  │  rabbit@10.77.0.11 /.12 /.13   │  │   streaming replication, leader key  │
  │ quorum queues, pause_minority  │  │   in etcd :2479                      │
  └────────────────────────────────┘  └──────────────────────────────────────┘
  Prometheus :9090 scrapes every service instance and gateway, the three
  nodes' rabbitmq_prometheus, Patroni, etcd, HAProxy; rules: deploy/prometheus/.

Every part is the Debian package's own binary (``scripts/ensure-cluster.sh``
installs what is absent), started here as a child process with its own
ports and data directory under ``CLUSTER_DIR``, so the cluster runs beside
this machine's single RabbitMQ and PostgreSQL. Each start is a fresh
cluster: the directory is wiped first. Ctrl-C stops all of it.

``Cluster`` is also what the cluster fault suite (``tests/cluster``) runs,
with its own ports (``ClusterPorts(offset=...)``) and directory.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import requests
import yaml

from devtools.platform import (
    METRICS_PORT_STRIDE,
    METRICS_PORTS,
    Platform,
    PlatformError,
    log_tail,
    supervise,
    taken_ports,
)
from services.common.contract.vocabulary import BACKEND_SERVICES
from services.gateway.messages import message_for

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
NODES = 3
DATABASES = ("identity", "verification", "recovery", "registry_sync")
VHOST = "selfservice"
# Creating the vhost on a just-formed cluster starts its message stores on
# every node: 10 s was seen to be too short for that on two busy cores.
BROKER_API_TIMEOUT = 60
PATRONI_SCOPE = "student-platform"
# What a process gets between SIGTERM and SIGKILL when the cluster stops:
# all of it must be gone within 10 s of Ctrl-C.
CLUSTER_STOP_GRACE_SECONDS = 6.0


# HAProxy's own failures → the platform's documented outage answers.
LOAD_BALANCER_ERRORS = {
    502: (503, "service_unavailable"),
    503: (503, "service_unavailable"),
    504: (504, "deadline_exceeded"),
}


def _put(url, attempts=5, pause=3.0, **kwargs):
    """An idempotent PUT to the management API, tried again on a server
    error: on a just-formed cluster, creating the vhost sometimes answers
    500 "Timed out while waiting for the vhost to initialise" (seen once in
    a cluster tier's start) and succeeds when asked again."""
    for attempt in range(1, attempts + 1):
        try:
            answer = requests.put(url, **kwargs)
        except requests.ConnectionError:
            if attempt == attempts:
                raise
        else:
            if answer.status_code < 500 or attempt == attempts:
                answer.raise_for_status()
                return answer
        time.sleep(pause)
    raise AssertionError("unreachable")


class ClusterError(PlatformError):
    """A part of the cluster did not come up; the message says which and why."""


@dataclass(frozen=True)
class ClusterPorts:
    """Every port of one cluster; ``offset`` moves all of them (the fault
    suite runs its cluster beside a ``make cluster``)."""

    offset: int = 0

    def _at(self, port):
        return port + self.offset

    @property
    def subnet(self):
        """The broker nodes' network: ``10.77.<k>.0/24``, one per offset."""
        return f"10.77.{self.offset // 100}"

    @property
    def etcd_client(self):
        return self._at(2479)

    @property
    def etcd_peer(self):
        return self._at(2480)

    def postgres(self, member):
        return self._at(5440 + member)

    def patroni(self, member):
        return self._at(8010 + member)

    @property
    def postgres_primary(self):
        """HAProxy's frontend to whichever member is the primary."""
        return self._at(5440)

    @property
    def gateway(self):
        return self._at(8000)

    def gateway_instance(self, k):
        return self._at(8000 + k)

    @property
    def haproxy_stats(self):
        return self._at(8404)

    @property
    def prometheus(self):
        return self._at(9090)

    @property
    def capture_http(self):
        return self._at(8025)

    @property
    def capture_smtp(self):
        return self._at(1025)

    def service_metrics(self, service, instance):
        return self._at(METRICS_PORTS[service]) + METRICS_PORT_STRIDE * (instance - 1)

    def listening(self):
        """``{port: what}`` of every port the cluster's own parts listen on."""
        ports = {
            self.etcd_client: "etcd (client)",
            self.etcd_peer: "etcd (peer)",
            self.postgres_primary: "HAProxy (PostgreSQL primary)",
            self.gateway: "HAProxy (gateway)",
            self.haproxy_stats: "HAProxy (stats)",
            self.prometheus: "Prometheus",
        }
        for member in (1, 2):
            ports[self.postgres(member)] = f"pg{member} (PostgreSQL)"
            ports[self.patroni(member)] = f"pg{member} (Patroni REST)"
        return ports


def _wait(what, check, timeout, interval=0.5):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except Exception as exc:  # noqa: BLE001 - reported if it never passes
            last = exc
        time.sleep(interval)
    raise ClusterError(f"{what} not ready after {timeout:.0f}s ({last!r})")


def _get(url, timeout=2, **kw):
    return requests.get(url, timeout=timeout, **kw)


# Inside each broker node's own network namespace: the standard ports.
AMQP_PORT, MANAGEMENT_PORT, RABBIT_METRICS_PORT = 5672, 15672, 15692


def _ip(*args, check=True):
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


class BrokerNet:
    """Each RabbitMQ node as a host of its own: a network namespace with one
    address on a bridge in this (the services') namespace. The nodes then
    use the standard ports, run their own epmd, and a partition is a routing
    change between namespaces — nothing outside them is touched.

        this namespace  10.77.k.1 ── bridge sp<k>br ─┬─ sp<k>-rmq1  10.77.k.11
                                                      ├─ sp<k>-rmq2  10.77.k.12
                                                      └─ sp<k>-rmq3  10.77.k.13
    """

    def __init__(self, ports):
        k = ports.offset // 100
        self.tag = f"sp{k}"
        self.subnet = ports.subnet
        self.bridge = f"{self.tag}br"

    @property
    def host_ip(self):
        return f"{self.subnet}.1"

    def node_ip(self, node):
        return f"{self.subnet}.{10 + node}"

    def namespace(self, node):
        return f"{self.tag}-rmq{node}"

    def enter(self, node):
        """The argv prefix that runs a command inside ``node``'s namespace.
        nsenter, not ``ip netns exec``: that one also remounts /sys in a
        mount namespace of its own, which fails where / is not a mount
        point (a chroot such as make fresh-check's)."""
        return ["nsenter", f"--net=/run/netns/{self.namespace(node)}", "--"]

    def _in(self, node, *args, check=True):
        return subprocess.run(
            [*self.enter(node), "ip", *args],
            capture_output=True,
            text=True,
            check=check,
        )

    def up(self):
        self.down()  # what a killed run left behind
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.host_ip}/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        for node in range(1, NODES + 1):
            ns, host_end, node_end = (
                self.namespace(node),
                f"{self.tag}r{node}h",
                f"{self.tag}r{node}n",
            )
            _ip("netns", "add", ns)
            _ip("link", "add", host_end, "type", "veth", "peer", "name", node_end)
            _ip("link", "set", node_end, "netns", ns)
            _ip("link", "set", host_end, "master", self.bridge, "up")
            self._in(node, "addr", "add", f"{self.node_ip(node)}/24", "dev", node_end)
            self._in(node, "link", "set", node_end, "up")
            self._in(node, "link", "set", "lo", "up")

    def down(self):
        """Kill whatever still runs in the namespaces (epmd), remove them."""
        for node in range(1, NODES + 1):
            ns = self.namespace(node)
            pids = _ip("netns", "pids", ns, check=False).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            _ip("netns", "del", ns, check=False)
            # A namespace outlives its deletion while its sockets close
            # (TIME_WAIT); its veth pair would then keep the name taken.
            _ip("link", "del", f"{self.tag}r{node}h", check=False)
        _ip("link", "del", self.bridge, check=False)

    def cut(self, node):
        """Partition ``node`` from the other nodes (both ways): packets
        between them are dropped. The services still reach every node."""
        for other in range(1, NODES + 1):
            if other != node:
                self._in(node, "route", "add", "blackhole", f"{self.node_ip(other)}/32")
                self._in(other, "route", "add", "blackhole", f"{self.node_ip(node)}/32")

    def heal(self, node):
        for other in range(1, NODES + 1):
            if other != node:
                self._in(
                    node,
                    "route",
                    "del",
                    "blackhole",
                    f"{self.node_ip(other)}/32",
                    check=False,
                )
                self._in(
                    other,
                    "route",
                    "del",
                    "blackhole",
                    f"{self.node_ip(node)}/32",
                    check=False,
                )


class Part:
    """One child process of the cluster with its log; started in a session
    of its own so a signal reaches its whole process group."""

    def __init__(self, name, argv, log_path, env=None, user=None, netns=None):
        self.name, self.argv, self.log_path = name, argv, Path(log_path)
        self.env, self.user, self.netns = env or {}, user, netns
        self.proc = None

    def start(self):
        env = {**os.environ, **self.env}
        user = {}
        argv = list(self.argv)
        if self.netns:
            # nsenter and setpriv each exec the next: ``proc`` is still the
            # part's own process.
            env["HOME"] = str(Path(f"~{self.user}").expanduser())
            env["USER"] = env["LOGNAME"] = self.user
            argv = [
                "nsenter", f"--net=/run/netns/{self.netns}", "--", "setpriv",
                f"--reuid={self.user}", f"--regid={self.user}", "--clear-groups",
                "--", *argv,
            ]  # fmt: skip
        elif self.user and os.geteuid() == 0:
            # Erlang and PostgreSQL refuse to run as root. Popen switches
            # user itself (no runuser in between), so ``proc`` is the part's
            # own process and waiting on it waits for the part to be gone.
            env["HOME"] = str(Path(f"~{self.user}").expanduser())
            env["USER"] = env["LOGNAME"] = self.user
            user = {"user": self.user, "group": self.user, "extra_groups": []}
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            argv, env=env, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True, cwd="/", **user,
        )  # fmt: skip
        log.close()
        return self

    @property
    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass

    def wait(self, timeout):
        if self.proc is None:
            return True
        try:
            self.proc.wait(timeout)
            return True
        except subprocess.TimeoutExpired:
            return False

    def tail(self):
        return f"{self.name}: last lines of {self.log_path}:\n{log_tail(self.log_path)}"


class Cluster:
    """The whole cluster: infrastructure parts, then the platform on it."""

    def __init__(self, directory, ports=None, instances=2, gateways=2, env=None):
        self.dir = Path(directory)
        self.ports = ports or ClusterPorts()
        self.instances = instances
        self.gateways = gateways
        self.extra_env = env or {}
        self.parts = {}
        self.platform = None
        self.net = BrokerNet(self.ports)

    # -- addresses -------------------------------------------------------
    def node_name(self, node):
        return f"rabbit@{self.net.node_ip(node)}"

    def amqp_uri(self, nodes=None):
        """Every node, ``;``-separated: kombu fails over along the list."""
        nodes = nodes or range(1, NODES + 1)
        return ";".join(
            f"amqp://guest:guest@{self.net.node_ip(n)}:{AMQP_PORT}/{VHOST}"
            for n in nodes
        )

    def db_uri(self, database):
        return f"postgresql://postgres:postgres@127.0.0.1:{self.ports.postgres_primary}/{database}"

    def management_url(self, node=1):
        return f"http://{self.net.node_ip(node)}:{MANAGEMENT_PORT}"

    @property
    def gateway_url(self):
        return f"http://127.0.0.1:{self.ports.gateway}"

    def platform_env(self):
        env = {
            "AMQP_URI": self.amqp_uri(),
            "QUEUE_TYPE": "quorum",
            **{f"{db.upper()}_DB_URI": self.db_uri(db) for db in DATABASES},
            **{
                f"{svc.upper()}_METRICS_PORT": str(self.ports.service_metrics(svc, 1))
                for svc in METRICS_PORTS
            },
        }
        return {**env, **self.extra_env}

    def instance_env(self, service, instance):
        """Instance k of a service starts its list at node k (mod 3): the
        instances of one service never all sit on one node, so a node lost
        or cut off takes at most part of each service's connections with it
        (with every list starting at node 1, a partition of node 1 stalled
        every identity instance until it healed, 1 run in 4)."""
        first = (instance - 1) % NODES
        order = [(first + i) % NODES + 1 for i in range(NODES)]
        return {"AMQP_URI": self.amqp_uri(order)}

    # -- start -----------------------------------------------------------
    def check_ports(self):
        taken = taken_ports(self.ports.listening())
        if taken:
            raise ClusterError("cannot start the cluster: " + "; ".join(taken))

    def _prepare_dir(self):
        if self.dir.exists():
            shutil.rmtree(self.dir)
        (self.dir / "logs").mkdir(parents=True)
        # RabbitMQ and PostgreSQL run as their own users: they must reach it.
        for path in (self.dir, *self.dir.parents):
            if path == Path("/"):
                break
            mode = path.stat().st_mode
            if not mode & 0o001:
                raise ClusterError(
                    f"{path} is not searchable by the rabbitmq and postgres users; "
                    "choose another CLUSTER_DIR"
                )
        self.dir.chmod(0o755)
        (self.dir / "logs").chmod(0o777)

    def log(self, name):
        return self.dir / "logs" / f"{name}.log"

    def _add(self, part):
        self.parts[part.name] = part
        return part.start()

    def start(self, wait=120):
        self.check_ports()
        self._prepare_dir()
        try:
            self.net.up()
            self.start_etcd()
            # The first node forms the cluster; the others find it through
            # classic peer discovery (started together, two could each
            # form a cluster of their own).
            self.start_rabbit(1)
            for member in (1, 2):
                self.start_patroni(member)
            self.start_haproxy()
            self.wait_rabbit(1)
            for node in range(2, NODES + 1):
                self.start_rabbit(node)
            self.wait_rabbits()
            _wait(
                "RabbitMQ cluster of three",
                lambda: len(self.running_nodes()) == NODES,
                60,
            )
            self.configure_broker()
            self.wait_postgres()
            self.start_prometheus()
            self.start_platform(wait)
        except BaseException:
            self.stop()
            raise
        return self

    # etcd: Patroni's store of the leader key
    def start_etcd(self):
        p = self.ports
        data = self.dir / "etcd"
        self._add(Part("etcd", [
            "etcd", "--name", "etcd1", "--data-dir", str(data),
            "--listen-client-urls", f"http://127.0.0.1:{p.etcd_client}",
            "--advertise-client-urls", f"http://127.0.0.1:{p.etcd_client}",
            "--listen-peer-urls", f"http://127.0.0.1:{p.etcd_peer}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{p.etcd_peer}",
            "--initial-cluster", f"etcd1=http://127.0.0.1:{p.etcd_peer}",
        ], self.log("etcd")))  # fmt: skip
        _wait("etcd", lambda: _get(f"http://127.0.0.1:{p.etcd_client}/health").ok, 30)

    # RabbitMQ: three nodes of the installed rabbitmq-server
    def rabbit_part(self, node):
        base = self.dir / f"rabbit-c{node}"
        conf = base / "rabbitmq.conf"
        if not conf.exists():
            base.mkdir()
            peers = [
                f"cluster_formation.classic_config.nodes.{n} = {self.node_name(n)}"
                for n in range(1, NODES + 1)
            ]
            conf.write_text(
                "\n".join(
                    [
                        f"listeners.tcp.default = {AMQP_PORT}",
                        f"management.tcp.port = {MANAGEMENT_PORT}",
                        f"prometheus.tcp.port = {RABBIT_METRICS_PORT}",
                        # Per-queue series (queue depth, dead letters).
                        "prometheus.return_per_object_metrics = true",
                        # A node cut off from the majority pauses: it closes
                        # its clients' connections and they move to the
                        # majority (why: RABBITMQ-CLUSTER.md).
                        "cluster_partition_handling = pause_minority",
                        # Quorum queue leaders spread over the nodes, not all
                        # on the node the declaring service happens to use.
                        "queue_leader_locator = balanced",
                        "loopback_users = none",
                        "cluster_formation.peer_discovery_backend = classic_config",
                        *peers,
                        "log.console = false",
                        "log.file.level = info",
                        "",
                    ]
                )
            )
            (base / "enabled_plugins").write_text(
                "[rabbitmq_management,rabbitmq_prometheus].\n"
            )
            # Our own environment file, not /etc/rabbitmq/rabbitmq-env.conf
            # (which may pin epmd and distribution to 127.0.0.1): this
            # host's epmd and distribution listen on its own address.
            (base / "rabbitmq-env.conf").write_text(
                f"ERL_EPMD_ADDRESS={self.net.node_ip(node)}\n"
            )
            shutil.chown(base, "rabbitmq", "rabbitmq")
            for child in base.iterdir():
                shutil.chown(child, "rabbitmq", "rabbitmq")
        return Part(
            f"rabbit-c{node}",
            ["/usr/lib/rabbitmq/bin/rabbitmq-server"],
            self.log(f"rabbit-c{node}"),
            env={
                "RABBITMQ_CONF_ENV_FILE": str(base / "rabbitmq-env.conf"),
                "RABBITMQ_NODENAME": self.node_name(node),
                "RABBITMQ_USE_LONGNAME": "true",
                "RABBITMQ_CONFIG_FILE": str(conf),
                "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
                "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
                "RABBITMQ_LOG_BASE": str(base / "log"),
                "RABBITMQ_PID_FILE": str(base / "pid"),
                # A partition is noticed in ~10 s, not the default 60.
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel net_ticktime 10",
            },
            user="rabbitmq",
            netns=self.net.namespace(node),
        )

    def start_rabbit(self, node):
        return self._add(self.rabbit_part(node))

    def wait_rabbit(self, node, timeout=90):
        def up():
            part = self.parts[f"rabbit-c{node}"]
            if not part.alive:
                raise ClusterError(part.tail())
            return _get(
                f"{self.management_url(node)}/api/overview", auth=("guest", "guest")
            ).ok

        _wait(f"rabbit-c{node}", up, timeout)

    def wait_rabbits(self):
        for node in range(1, NODES + 1):
            self.wait_rabbit(node)

    def broker_api(self, path):
        """GET ``/api<path>`` from the first node whose management answers."""
        last = None
        for node in range(1, NODES + 1):
            try:
                answer = _get(
                    f"{self.management_url(node)}/api{path}",
                    auth=("guest", "guest"),
                    timeout=5,
                )
                if answer.ok:
                    return answer.json()
                last = answer.status_code
            except requests.RequestException as exc:
                last = exc
        raise ClusterError(f"no RabbitMQ node answers /api{path} ({last!r})")

    def running_nodes(self):
        return [n["name"] for n in self.broker_api("/nodes") if n.get("running")]

    def configure_broker(self):
        """The vhost, its default queue type and the delivery-limit and
        dead-letter policy, exactly as ``deploy/k8s/rabbitmq.yaml`` declares."""
        api, auth = self.management_url(1) + "/api", ("guest", "guest")
        vhost = quote(VHOST, safe="")
        manifests = list(
            yaml.safe_load_all((DEPLOY / "k8s" / "rabbitmq.yaml").read_text())
        )
        by_kind = {}
        for doc in manifests:
            if doc:
                by_kind.setdefault(doc["kind"], []).append(doc["spec"])
        default_type = by_kind["Vhost"][0].get("defaultQueueType", "quorum")
        _put(
            f"{api}/vhosts/{vhost}", auth=auth, timeout=BROKER_API_TIMEOUT,
            json={"default_queue_type": default_type, "description": "student platform"},
        )  # fmt: skip
        _put(
            f"{api}/permissions/{vhost}/guest", auth=auth, timeout=BROKER_API_TIMEOUT,
            json={"configure": ".*", "write": ".*", "read": ".*"},
        )  # fmt: skip
        for policy in by_kind["Policy"]:
            _put(
                f"{api}/policies/{vhost}/{quote(policy['name'], safe='')}",
                auth=auth, timeout=BROKER_API_TIMEOUT,
                json={
                    "pattern": policy["pattern"], "apply-to": policy["applyTo"],
                    "priority": policy["priority"], "definition": policy["definition"],
                },
            )  # fmt: skip
        for exchange in by_kind["Exchange"]:
            _put(
                f"{api}/exchanges/{vhost}/{quote(exchange['name'], safe='')}",
                auth=auth, timeout=BROKER_API_TIMEOUT,
                json={"type": exchange["type"], "durable": exchange["durable"]},
            )  # fmt: skip
        for queue in by_kind["Queue"]:
            _put(
                f"{api}/queues/{vhost}/{quote(queue['name'], safe='')}",
                auth=auth, timeout=BROKER_API_TIMEOUT,
                json={"durable": True, "arguments": {"x-queue-type": queue["type"]}},
            )  # fmt: skip
        for binding in by_kind["Binding"]:
            requests.post(
                f"{api}/bindings/{vhost}/e/{quote(binding['source'], safe='')}"
                f"/q/{quote(binding['destination'], safe='')}",
                auth=auth, timeout=BROKER_API_TIMEOUT, json={"routing_key": ""},
            ).raise_for_status()  # fmt: skip

    # PostgreSQL: two members under Patroni
    def patroni_config(self, member):
        p = self.ports
        base = self.dir / f"pg{member}"
        return {
            "scope": PATRONI_SCOPE,
            "name": f"pg{member}",
            "restapi": {
                "listen": f"127.0.0.1:{p.patroni(member)}",
                "connect_address": f"127.0.0.1:{p.patroni(member)}",
            },
            "etcd3": {"hosts": [f"127.0.0.1:{p.etcd_client}"]},
            "bootstrap": {
                "dcs": {
                    # Failover in ~10 s: the leader key lives ttl seconds.
                    "ttl": 10,
                    "loop_wait": 2,
                    "retry_timeout": 4,
                    "maximum_lag_on_failover": 16 * 1024 * 1024,
                    "postgresql": {
                        "use_pg_rewind": True,
                        "parameters": {
                            "max_connections": 400,
                            "wal_log_hints": "on",
                            "shared_buffers": "64MB",
                            "synchronous_commit": "on",
                        },
                    },
                },
                "initdb": [
                    {"encoding": "UTF8"},
                    {"locale": "C.UTF-8"},
                    "data-checksums",
                ],
                "pg_hba": [
                    "local all all trust",
                    "host replication replicator 127.0.0.1/32 trust",
                    "host all all 127.0.0.1/32 trust",
                ],
            },
            "postgresql": {
                "listen": f"127.0.0.1:{p.postgres(member)}",
                "connect_address": f"127.0.0.1:{p.postgres(member)}",
                "data_dir": str(base / "data"),
                "bin_dir": postgres_bin_dir(),
                "pgpass": str(base / "pgpass"),
                "authentication": {
                    "replication": {"username": "replicator", "password": "replicator"},
                    "superuser": {"username": "postgres", "password": "postgres"},
                    "rewind": {"username": "postgres", "password": "postgres"},
                },
                "parameters": {"unix_socket_directories": str(base)},
            },
            "tags": {"nofailover": False, "noloadbalance": False},
        }

    def start_patroni(self, member):
        base = self.dir / f"pg{member}"
        if not base.exists():
            base.mkdir(mode=0o700)
            shutil.chown(base, "postgres", "postgres")
        config = base / "patroni.yml"
        config.write_text(yaml.safe_dump(self.patroni_config(member)))
        shutil.chown(config, "postgres", "postgres")
        return self._add(
            Part(
                f"pg{member}",
                ["patroni", str(config)],
                self.log(f"pg{member}"),
                user="postgres",
            )
        )

    def patroni_state(self, member):
        return _get(f"http://127.0.0.1:{self.ports.patroni(member)}/patroni").json()

    def primary(self):
        """The member number Patroni says leads, or None."""
        for member in (1, 2):
            try:
                if (
                    _get(
                        f"http://127.0.0.1:{self.ports.patroni(member)}/primary"
                    ).status_code
                    == 200
                ):
                    return member
            except requests.RequestException:
                continue
        return None

    def member_role(self, member):
        """``(role, state)`` Patroni reports for ``member``, e.g.
        ``("replica", "running")``; ``(None, None)`` while it does not answer."""
        try:
            state = self.patroni_state(member)
        except (requests.RequestException, ValueError):
            return None, None
        role = {"master": "primary", "standby_leader": "primary"}.get(
            state.get("role"), state.get("role")
        )
        return role, state.get("state")

    def postmaster_pid(self, member):
        try:
            text = (self.dir / f"pg{member}" / "data" / "postmaster.pid").read_text()
            return int(text.split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def wait_postgres(self, timeout=90):
        def ready():
            for member in (1, 2):
                part = self.parts[f"pg{member}"]
                if not part.alive:
                    raise ClusterError(part.tail())
            if self.primary() is None:
                return False
            states = [self.patroni_state(m).get("state") for m in (1, 2)]
            return (
                all(state == "running" for state in states) and self.replica_streaming()
            )

        _wait("PostgreSQL primary and streaming replica", ready, timeout)
        _wait(
            "PostgreSQL through HAProxy",
            lambda: subprocess.run(
                ["pg_isready", "-q", "-h", "127.0.0.1", "-p", str(self.ports.postgres_primary)]
            ).returncode == 0,
            30,
        )  # fmt: skip

    def replica_streaming(self):
        cluster = _get(f"http://127.0.0.1:{self.ports.patroni(1)}/cluster").json()
        members = cluster.get("members", [])
        replicas = [m for m in members if m.get("role") in ("replica", "sync_standby")]
        return bool(replicas) and all(
            m.get("state") in ("streaming", "running") for m in replicas
        )

    # HAProxy: the PostgreSQL primary and the two gateways
    def haproxy_config(self):
        p = self.ports
        pg_servers = "\n".join(
            f"    server pg{m} 127.0.0.1:{p.postgres(m)} check port {p.patroni(m)}"
            for m in (1, 2)
        )
        gateways = "\n".join(
            f"    server gateway-{k} 127.0.0.1:{p.gateway_instance(k)} check"
            for k in range(1, self.gateways + 1)
        )
        errorfiles = "\n".join(
            f"    errorfile {status} {path}"
            for status, path in self.write_errorfiles().items()
        )
        return f"""# Generated by devtools/cluster.py; deploy/haproxy/README says what each line is for.
global
    maxconn 4000
    log stdout format raw local0 warning

defaults
    log global
    timeout connect 2s
    retries 2

# Only the member Patroni calls primary takes connections; when that
# changes, the old primary's sessions are cut so no write lands on a replica.
listen postgres-primary
    bind 127.0.0.1:{p.postgres_primary}
    mode tcp
    timeout client 1h
    timeout server 1h
    option httpchk GET /primary
    http-check expect status 200
    default-server inter 1s fall 2 rise 2 on-marked-down shutdown-sessions
{pg_servers}

# The gateways. Health is /health/live (the process answers), never the
# services' or the database's state: that would take every gateway out at
# once during a database failover. A request whose gateway refused the
# connection, or died before answering, is sent to the other one: every
# command of the platform is idempotent or unique-keyed, so a replay is
# absorbed (tests/cluster proves it under kill -9).
frontend gateway
    bind 127.0.0.1:{p.gateway}
    mode http
    timeout client 60s
    timeout http-request 10s
    option http-server-close
    option http-buffer-request
    default_backend gateways

backend gateways
    mode http
    timeout server 60s
    timeout check 2s
    balance roundrobin
    option httpchk GET /health/live
    http-check expect status 200
    option redispatch 1
    retry-on conn-failure empty-response
    default-server inter 1s fall 2 rise 2
{gateways}
{errorfiles}
listen stats
    bind 127.0.0.1:{p.haproxy_stats}
    mode http
    timeout client 30s
    timeout server 30s
    stats enable
    stats uri /stats
    stats refresh 5s
    http-request use-service prometheus-exporter if {{ path /metrics }}
"""

    def write_errorfiles(self):
        """HAProxy's own answers (no gateway up, one died mid-request, too
        slow) in the platform's documented form: problem+json with a stable
        code, zh/en, Retry-After — never HAProxy's HTML page."""
        written = {}
        for status, (answer, code) in LOAD_BALANCER_ERRORS.items():
            zh, en = message_for(code)
            body = json.dumps(
                {
                    "type": f"urn:problem:{code}",
                    "title": en,
                    "status": answer,
                    "code": code,
                    "detail": zh,
                    "message_zh": zh,
                    "message_en": en,
                    "retry_after": 2,
                },
                ensure_ascii=False,
            ).encode()
            reason = {503: "Service Unavailable", 504: "Gateway Timeout"}[answer]
            head = (
                f"HTTP/1.1 {answer} {reason}\r\n"
                "Content-Type: application/problem+json; charset=utf-8\r\n"
                f"Content-Length: {len(body)}\r\nRetry-After: 2\r\n"
                "Cache-Control: no-store\r\nConnection: close\r\n\r\n"
            ).encode()
            path = self.dir / f"haproxy-{status}.http"
            path.write_bytes(head + body)
            written[status] = path
        return written

    def start_haproxy(self):
        config = self.dir / "haproxy.cfg"
        config.write_text(self.haproxy_config())
        check = subprocess.run(
            ["haproxy", "-c", "-q", "-f", str(config)], capture_output=True, text=True
        )
        if check.returncode:
            raise ClusterError(f"haproxy refused its configuration: {check.stderr}")
        self._add(
            Part("haproxy", ["haproxy", "-db", "-f", str(config)], self.log("haproxy"))
        )

    # Prometheus
    def scrape_targets(self):
        p = self.ports
        services = [
            f"127.0.0.1:{p.service_metrics(svc, k)}"
            for svc in METRICS_PORTS
            for k in range(1, self.instances + 1)
        ]
        return {
            "services": services,
            "gateway": [
                f"127.0.0.1:{p.gateway_instance(k)}"
                for k in range(1, self.gateways + 1)
            ],
            "rabbitmq": [
                f"{self.net.node_ip(n)}:{RABBIT_METRICS_PORT}"
                for n in range(1, NODES + 1)
            ],
            "patroni": [f"127.0.0.1:{p.patroni(m)}" for m in (1, 2)],
            "etcd": [f"127.0.0.1:{p.etcd_client}"],
            "haproxy": [f"127.0.0.1:{p.haproxy_stats}"],
        }

    def prometheus_config(self):
        jobs = [
            {
                "job_name": job,
                "static_configs": [{"targets": targets}],
            }
            for job, targets in self.scrape_targets().items()
        ]
        return {
            "global": {"scrape_interval": "5s", "evaluation_interval": "5s"},
            "rule_files": [str(DEPLOY / "prometheus" / "alerts.yml")],
            "scrape_configs": jobs,
        }

    def start_prometheus(self):
        config = self.dir / "prometheus.yml"
        config.write_text(yaml.safe_dump(self.prometheus_config(), sort_keys=False))
        self._add(Part("prometheus", [
            "prometheus", f"--config.file={config}",
            f"--storage.tsdb.path={self.dir / 'prometheus'}",
            f"--web.listen-address=127.0.0.1:{self.ports.prometheus}",
            "--web.enable-lifecycle",
        ], self.log("prometheus")))  # fmt: skip
        _wait(
            "Prometheus",
            lambda: _get(f"http://127.0.0.1:{self.ports.prometheus}/-/ready").ok,
            30,
        )

    def gateway_instance_healthy(self, k):
        try:
            return _get(
                f"http://127.0.0.1:{self.ports.gateway_instance(k)}/health", timeout=5
            ).ok
        except requests.RequestException:
            return False

    def alerts(self):
        """``{alertname: state}`` of every pending or firing alert."""
        answer = _get(f"http://127.0.0.1:{self.ports.prometheus}/api/v1/alerts").json()
        return {a["labels"]["alertname"]: a["state"] for a in answer["data"]["alerts"]}

    # The platform: two of every service, two gateways behind HAProxy
    def start_platform(self, wait=120):
        p = self.ports
        self.platform = Platform(
            env=self.platform_env(),
            log_dir=self.dir / "logs",
            gateway_address=f"127.0.0.1:{p.gateway}",
            gateway_addresses=[
                f"127.0.0.1:{p.gateway_instance(k)}"
                for k in range(1, self.gateways + 1)
            ],
            capture_http_port=p.capture_http,
            capture_smtp_port=p.capture_smtp,
            instances=dict.fromkeys(BACKEND_SERVICES, self.instances),
            instance_env=self.instance_env,
        )
        self.platform.start(wait=wait)
        # That readiness asked one gateway, through HAProxy, which routes by
        # /health/live (the process answers) — a gateway still joining the
        # broker answered a test's first send 503 service_unavailable. The
        # cluster is ready when every gateway reaches every service.
        _wait(
            "every gateway reaching every service",
            lambda: all(
                self.gateway_instance_healthy(k) for k in range(1, self.gateways + 1)
            ),
            wait,
        )
        return self.platform

    # -- faults ----------------------------------------------------------
    def kill(self, name):
        """SIGKILL one part (``rabbit-c2``, ``pg1``) and all it started."""
        part = self.parts[name]
        pid = self.postmaster_pid(int(name[2:])) if name.startswith("pg") else None
        part.signal(signal.SIGKILL)
        part.wait(10)
        if pid:  # Patroni's postmaster runs in a session of its own
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def restart(self, name):
        if name.startswith("rabbit-c"):
            node = int(name.removeprefix("rabbit-c"))
            self.start_rabbit(node)
        elif name.startswith("pg"):
            self.start_patroni(int(name[2:]))
        else:
            self.parts[name].start()

    def stop_rabbit(self, node, timeout=60):
        """A clean stop, as a rolling restart does it (SIGTERM: the node
        hands its queues' leadership over and leaves in order)."""
        part = self.parts[f"rabbit-c{node}"]
        part.signal(signal.SIGTERM)
        if not part.wait(timeout):
            raise ClusterError(f"rabbit-c{node} did not stop in {timeout}s")

    def restart_rabbit(self, node, grace=20):
        """The runbook for a node that does not come back by itself: stop
        it (SIGKILL after ``grace``) and start it again on its data."""
        part = self.parts[f"rabbit-c{node}"]
        part.signal(signal.SIGTERM)
        if not part.wait(grace):
            part.signal(signal.SIGKILL)
            part.wait(10)
        self.start_rabbit(node)

    def partition(self, node):
        """Cut ``node`` off from the other two (the services still reach it)."""
        self.net.cut(node)

    def heal(self, node):
        self.net.heal(node)

    # -- stop ------------------------------------------------------------
    def stop(self):
        """Everything at once: SIGTERM to every part and every service, then
        SIGKILL to what is still there after the grace (10 s in all at most)."""
        started = time.monotonic()
        postmasters = [self.postmaster_pid(m) for m in (1, 2)]
        parts = [part for part in self.parts.values() if part.alive]
        for part in parts:
            part.signal(signal.SIGTERM)
        if self.platform is not None:
            platform, self.platform = self.platform, None
            platform.stop()  # its own SIGTERM, then SIGKILL after 3 s
        deadline = started + CLUSTER_STOP_GRACE_SECONDS
        for part in parts:
            part.wait(max(deadline - time.monotonic(), 0.05))
        for part in parts:
            if part.alive:
                part.signal(signal.SIGKILL)
                part.wait(2)
        for pid in postmasters:
            if pid:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.net.down()
        self.parts = {}

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def addresses(self):
        p = self.ports
        lines = [
            f"Gateway (HAProxy):   {self.gateway_url}  (health {self.gateway_url}/health, docs {self.gateway_url}/docs)",
            "Gateways:            " + ", ".join(
                f"gateway-{k} http://127.0.0.1:{p.gateway_instance(k)}"
                for k in range(1, self.gateways + 1)
            ),
            f"HAProxy stats:       http://127.0.0.1:{p.haproxy_stats}/stats",
            f"PostgreSQL primary:  postgresql://postgres@127.0.0.1:{p.postgres_primary}/  (through HAProxy)",
            "PostgreSQL members:  " + ", ".join(
                f"pg{m} :{p.postgres(m)} (Patroni http://127.0.0.1:{p.patroni(m)}/patroni)"
                for m in (1, 2)
            ),
            f"etcd:                http://127.0.0.1:{p.etcd_client}",
            "RabbitMQ nodes:      " + ", ".join(
                f"{self.node_name(n)} (netns {self.net.namespace(n)}) management "
                f"{self.management_url(n)}" for n in range(1, NODES + 1)
            ),
            f"AMQP_URI:            {self.amqp_uri()}",
            f"Prometheus:          http://127.0.0.1:{p.prometheus}  (alerts /alerts)",
            f"Captured SMS/email:  http://127.0.0.1:{p.capture_http}/api/messages?to=...",
            f"Logs:                {self.dir / 'logs'}",
        ]  # fmt: skip
        return "\n".join(lines)


def postgres_bin_dir():
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name)
    )
    if not versions:
        raise ClusterError("no PostgreSQL server binaries under /usr/lib/postgresql")
    return str(versions[-1])


def main(argv=None):
    import argparse

    parser = argparse.ArgumentParser(prog="python -m devtools.cluster")
    parser.add_argument(
        "--dir",
        default=os.environ.get("CLUSTER_DIR", "/var/tmp/student-platform-cluster"),
        help="where the cluster's data and logs live (wiped at start)",
    )
    parser.add_argument(
        "--port-offset",
        type=int,
        default=int(os.environ.get("CLUSTER_PORT_OFFSET", "0")),
        help="move every port by this (a multiple of 100; 0: gateway on :8000)",
    )
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        parser.error("run as root: the nodes run as the rabbitmq and postgres users")
    if args.port_offset % 100 or not 0 <= args.port_offset <= 2500:
        parser.error("--port-offset: a multiple of 100 from 0 to 2500")
    cluster = Cluster(args.dir, ports=ClusterPorts(offset=args.port_offset))

    def start():
        print("[cluster] starting etcd, 3 RabbitMQ nodes, 2 Patroni members, HAProxy, "
              "Prometheus, then 2 of every service", flush=True)  # fmt: skip
        cluster.start()

    def check():
        dead = cluster.platform.died()
        if dead:
            raise PlatformError(cluster.platform.death_report(*dead))
        lost = [p for p in cluster.parts.values() if not p.alive]
        if lost:
            raise ClusterError(lost[0].tail())

    return supervise(
        "cluster",
        start,
        lambda: f"\nCluster up.\n{cluster.addresses()}\nCtrl-C stops everything.",
        check,
        cluster.stop,
    )


if __name__ == "__main__":
    sys.exit(main())
