"""The Kubernetes manifests in deploy/k8s, checked offline (issue #12):

* every built-in resource validates, strictly (no unknown fields), against
  the Kubernetes 1.37 API schemas bundled with ``kubernetes-validate``;
* the custom resources (KEDA, RabbitMQ operators), which those schemas do
  not cover, validate against the shapes below — the fields this platform
  uses, written from the operators' documentation;
* and the platform's own promises hold in them: every back-end service has
  a Deployment whose readiness is its health RPC, a PodDisruptionBudget,
  a KEDA scaler on its RPC queue, and every secret its config.yml reads;
  queues are quorum by default with a delivery limit and a dead-letter route.
"""

import re
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from services.common.contract.vocabulary import BACKEND_SERVICES

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
K8S_VERSION = "1.37"
# What a config.yml reads from the environment that must come from a Secret.
SECRET_NAME = re.compile(r"(_KEY|_SECRET|PASSWORD|_TOKEN|_DB_URI|AMQP_URI)$")

_REF = {
    "type": "object",
    "required": ["name"],
    "properties": {"name": {"type": "string"}},
}
_CLUSTER_REF = {"rabbitmqClusterReference": _REF}


def _spec(required, properties):
    return {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "metadata": {"type": "object", "required": ["name"]},
            "spec": {
                "type": "object",
                "required": required,
                "additionalProperties": False,
                "properties": properties,
            },
        },
    }


_INT = {"type": "integer", "minimum": 0}
_STR = {"type": "string", "minLength": 1}
CUSTOM_SCHEMAS = {
    ("keda.sh/v1alpha1", "ScaledObject"): _spec(
        ["scaleTargetRef", "triggers"],
        {
            "scaleTargetRef": _REF,
            "pollingInterval": _INT,
            "cooldownPeriod": _INT,
            "minReplicaCount": _INT,
            "maxReplicaCount": {"type": "integer", "minimum": 1},
            "triggers": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["type", "metadata"],
                    "additionalProperties": False,
                    "properties": {
                        "type": {"enum": ["rabbitmq", "cpu", "memory"]},
                        "metricType": {"enum": ["Utilization", "AverageValue"]},
                        "metadata": {
                            "type": "object",
                            "additionalProperties": {"type": "string"},
                        },
                        "authenticationRef": _REF,
                    },
                },
            },
        },
    ),
    ("keda.sh/v1alpha1", "TriggerAuthentication"): _spec(
        ["secretTargetRef"],
        {
            "secretTargetRef": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["parameter", "name", "key"],
                    "additionalProperties": False,
                    "properties": {"parameter": _STR, "name": _STR, "key": _STR},
                },
            }
        },
    ),
    ("rabbitmq.com/v1beta1", "RabbitmqCluster"): _spec(
        ["replicas"],
        {
            "replicas": {"enum": [1, 3, 5, 7]},
            "resources": {"type": "object"},
            "rabbitmq": {
                "type": "object",
                "additionalProperties": False,
                "properties": {"additionalConfig": _STR},
            },
        },
    ),
    ("postgresql.cnpg.io/v1", "Cluster"): _spec(
        ["instances", "storage"],
        {
            "instances": {"type": "integer", "minimum": 2},
            "primaryUpdateStrategy": {"enum": ["unsupervised", "supervised"]},
            "postgresql": {
                "type": "object",
                "properties": {
                    "parameters": {
                        "type": "object",
                        "additionalProperties": {"type": "string"},
                    }
                },
            },
            "bootstrap": {"type": "object"},
            "managed": {
                "type": "object",
                "properties": {
                    "roles": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["name", "ensure", "login", "passwordSecret"],
                            "additionalProperties": False,
                            "properties": {
                                "name": _STR,
                                "ensure": {"enum": ["present", "absent"]},
                                "login": {"type": "boolean"},
                                "passwordSecret": _REF,
                            },
                        },
                    }
                },
            },
            "storage": {
                "type": "object",
                "required": ["size"],
                "properties": {"size": _STR},
            },
        },
    ),
    ("postgresql.cnpg.io/v1", "Database"): _spec(
        ["name", "owner", "cluster"],
        {"name": _STR, "owner": _STR, "cluster": _REF},
    ),
    ("rabbitmq.com/v1beta1", "Vhost"): _spec(
        ["name", "rabbitmqClusterReference"],
        {
            "name": _STR,
            "defaultQueueType": {"enum": ["classic", "quorum", "stream"]},
            **_CLUSTER_REF,
        },
    ),
    ("rabbitmq.com/v1beta1", "Policy"): _spec(
        ["name", "pattern", "definition", "rabbitmqClusterReference"],
        {
            "name": _STR,
            "vhost": _STR,
            "pattern": _STR,
            "applyTo": {"enum": ["queues", "exchanges", "all"]},
            "priority": _INT,
            "definition": {"type": "object", "minProperties": 1},
            **_CLUSTER_REF,
        },
    ),
    ("rabbitmq.com/v1beta1", "Exchange"): _spec(
        ["name", "rabbitmqClusterReference"],
        {
            "name": _STR,
            "vhost": _STR,
            "type": {"enum": ["direct", "fanout", "topic", "headers"]},
            "durable": {"type": "boolean"},
            **_CLUSTER_REF,
        },
    ),
    ("rabbitmq.com/v1beta1", "Queue"): _spec(
        ["name", "rabbitmqClusterReference"],
        {
            "name": _STR,
            "vhost": _STR,
            "type": {"enum": ["classic", "quorum", "stream"]},
            "durable": {"type": "boolean"},
            **_CLUSTER_REF,
        },
    ),
    ("rabbitmq.com/v1beta1", "Binding"): _spec(
        ["source", "destination", "destinationType", "rabbitmqClusterReference"],
        {
            "vhost": _STR,
            "source": _STR,
            "destination": _STR,
            "destinationType": {"enum": ["queue", "exchange"]},
            "routingKey": {"type": "string"},
            **_CLUSTER_REF,
        },
    ),
}


def resources():
    found = []
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                found.append((path.name, doc))
    return found


def _id(item):
    name, doc = item
    return f"{name}:{doc['kind']}/{doc['metadata']['name']}"


def by_kind(kind):
    return {
        doc["metadata"]["name"]: doc for _, doc in resources() if doc["kind"] == kind
    }


@pytest.mark.parametrize("item", resources(), ids=_id)
def test_every_resource_validates_against_its_schema(item):
    _, doc = item
    custom = CUSTOM_SCHEMAS.get((doc["apiVersion"], doc["kind"]))
    if custom is not None:
        jsonschema.validate(doc, custom)
    else:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_an_unknown_field_is_refused():
    """The validation is strict: a misspelt field fails (as it should)."""
    deployment = by_kind("Deployment")["identity"]
    broken = {**deployment, "spec": {**deployment["spec"], "replica": 2}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)
    scaler = by_kind("ScaledObject")["identity"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(
            {**scaler, "spec": {**scaler["spec"], "minReplicas": 1}},
            CUSTOM_SCHEMAS[("keda.sh/v1alpha1", "ScaledObject")],
        )


def _container(deployment):
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


@pytest.mark.parametrize("service", BACKEND_SERVICES)
def test_each_backend_service_is_ready_by_its_health_rpc_and_survives_drains(service):
    name = service.replace("_", "-")
    deployment = by_kind("Deployment")[name]
    assert deployment["spec"]["replicas"] >= 2
    container = _container(deployment)
    assert container["args"] == [service]
    assert container["readinessProbe"]["exec"]["command"] == [
        "python", "-m", "services.common.plumbing.probe", service,
    ]  # fmt: skip
    budget = by_kind("PodDisruptionBudget")[name]
    assert budget["spec"]["minAvailable"] == 1
    assert (
        budget["spec"]["selector"]["matchLabels"]
        == deployment["spec"]["selector"]["matchLabels"]
    )


@pytest.mark.parametrize("service", BACKEND_SERVICES)
def test_each_backend_service_scales_on_its_own_rpc_queue(service):
    name = service.replace("_", "-")
    scaler = by_kind("ScaledObject")[name]
    assert scaler["spec"]["scaleTargetRef"]["name"] == name
    (trigger,) = scaler["spec"]["triggers"]
    assert trigger["type"] == "rabbitmq"
    assert trigger["metadata"]["queueName"] == f"rpc-{service}"
    assert (
        trigger["metadata"]["vhostName"]
        == by_kind("Vhost")["selfservice"]["spec"]["name"]
    )
    assert scaler["spec"]["minReplicaCount"] >= 2  # as the PDB assumes


@pytest.mark.parametrize("service", BACKEND_SERVICES + ("gateway",))
def test_every_secret_a_service_reads_comes_from_the_secret(service):
    """No key falls back to its development default in a cluster."""
    text = (ROOT / "services" / service / "config.yml").read_text()
    wanted = {
        var for var in re.findall(r"\$\{([A-Z0-9_]+)", text) if SECRET_NAME.search(var)
    }
    secret = by_kind("Secret")["selfservice-secrets"]["stringData"]
    env = _container(by_kind("Deployment")[service.replace("_", "-")])["env"]
    from_secret = {
        item["name"]
        for item in env
        if item.get("valueFrom", {}).get("secretKeyRef", {}).get("key") == item["name"]
    }
    assert wanted <= from_secret, sorted(wanted - from_secret)
    assert from_secret <= set(secret), sorted(from_secret - set(secret))


def test_queues_are_quorum_with_a_delivery_limit_and_a_dead_letter_route():
    vhost = by_kind("Vhost")["selfservice"]["spec"]
    assert vhost["defaultQueueType"] == "quorum"
    assert by_kind("RabbitmqCluster")["rabbitmq"]["spec"]["replicas"] == 3
    policy = by_kind("Policy")["selfservice-delivery-limit"]["spec"]
    assert policy["vhost"] == vhost["name"]
    for queue in ("rpc-identity", "evt-identity-account_registered--x.y"):
        assert re.search(policy["pattern"], queue)
    assert not re.search(policy["pattern"], "rpc.reply-fast-gateway-abc")
    definition = policy["definition"]
    assert definition["delivery-limit"] > 5  # above EVENT_MAX_ATTEMPTS' parking
    exchange = by_kind("Exchange")["selfservice-dead-letters"]["spec"]
    assert definition["dead-letter-exchange"] == exchange["name"]
    binding = by_kind("Binding")["selfservice-dead-letters"]["spec"]
    queue = by_kind("Queue")["selfservice-dead-letters"]["spec"]
    assert (binding["source"], binding["destination"]) == (
        exchange["name"],
        queue["name"],
    )
    assert queue["type"] == "quorum"
