"""deploy/ agrees with the code: the same image everywhere, one Deployment
and one compose service per service, each started with a service that
exists, and only environment variables the service's config.yml reads."""

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ["identity", "verification", "recovery", "registry_sync", "gateway"]
IMAGE = "student-selfservice:latest"


def config_env_names(service):
    text = (ROOT / "services" / service / "config.yml").read_text()
    return set(re.findall(r"\$\{([A-Z0-9_]+)", text))


def k8s_documents():
    docs = []
    for path in sorted((ROOT / "deploy" / "k8s").glob("*.yaml")):
        docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return docs


def test_every_service_has_a_deployment_with_the_one_image_and_its_name():
    deployments = {
        d["metadata"]["name"]: d for d in k8s_documents() if d["kind"] == "Deployment"
    }
    assert set(deployments) == {s.replace("_", "-") for s in SERVICES}
    for service in SERVICES:
        container = deployments[service.replace("_", "-")]["spec"]["template"]["spec"][
            "containers"
        ][0]
        assert container["image"] == IMAGE
        assert container["args"] == [service]
        assert (ROOT / "services" / service / "service.py").exists()


def test_deployments_only_set_env_their_config_reads():
    docs = k8s_documents()
    config_map = next(d for d in docs if d["kind"] == "ConfigMap")
    secret = next(d for d in docs if d["kind"] == "Secret")
    for doc in docs:
        if doc["kind"] != "Deployment":
            continue
        service = doc["spec"]["template"]["spec"]["containers"][0]["args"][0]
        container = doc["spec"]["template"]["spec"]["containers"][0]
        names = {e["name"] for e in container.get("env", [])}
        for env in container["env"]:
            ref = env["valueFrom"]["secretKeyRef"]
            assert ref["key"] in secret["stringData"]
        wanted = config_env_names(service)
        assert names <= wanted, (service, names - wanted)
        if service != "gateway":
            assert f"{service.upper()}_DB_URI" in names
        # The shared ConfigMap may carry keys other services read, but no
        # key that no service reads at all.
    every_name = set().union(*(config_env_names(s) for s in SERVICES))
    assert set(config_map["data"]) <= every_name


def test_gateway_is_exposed_by_a_service_on_its_http_port():
    service = next(
        d
        for d in k8s_documents()
        if d["kind"] == "Service" and d["metadata"]["name"] == "gateway"
    )
    assert service["spec"]["selector"] == {"app.kubernetes.io/name": "gateway"}


def test_keda_scales_a_deployment_that_exists_on_its_rpc_queue():
    docs = k8s_documents()
    scaled = next(d for d in docs if d["kind"] == "ScaledObject")
    target = scaled["spec"]["scaleTargetRef"]["name"]
    assert target in {d["metadata"]["name"] for d in docs if d["kind"] == "Deployment"}
    assert scaled["spec"]["triggers"][0]["metadata"]["queueName"] == f"rpc-{target}"


@pytest.mark.parametrize("service", SERVICES)
def test_compose_runs_each_service_from_the_one_image_with_known_env(service):
    compose = yaml.safe_load((ROOT / "deploy" / "docker-compose.yml").read_text())
    entry = compose["services"][service]
    assert entry["image"] == IMAGE and entry["command"] == [service]
    unknown = set(entry["environment"]) - set().union(
        *(config_env_names(s) for s in SERVICES)
    )
    assert not unknown, unknown


def test_container_entrypoint_knows_exactly_the_five_services():
    run_sh = (ROOT / "deploy" / "run.sh").read_text()
    assert "identity|verification|recovery|registry_sync|gateway)" in run_sh
