"""The running platform as an operator and a client app see it."""

import time
import uuid

import yaml

from services.common.plumbing.testing import wait_until


def test_all_five_services_are_up(api):
    answer = api.get("/health")
    assert answer.status_code == 200, answer.text
    services = answer.json()["services"]
    assert set(services) == {"identity", "verification", "recovery", "registry_sync"}
    assert all(s["status"] == "up" and s["database"] == "ok" for s in services.values())


def test_stopping_a_service_flips_health_to_503_naming_it_within_5s(api, platform):
    platform.stop_service("recovery")
    try:
        stopped_at = time.monotonic()
        answers = []

        def health_is_503():
            answers.append(api.get("/health"))  # a Response is falsy when not ok
            return answers[-1].status_code == 503

        wait_until(health_is_503, timeout=10, message="health 503")
        assert time.monotonic() - stopped_at < 5
        answer = answers[-1]
        body = answer.json()
        assert body["services"]["recovery"]["status"] == "down"
        assert all(
            body["services"][s]["status"] == "up"
            for s in ("identity", "verification", "registry_sync")
        )
    finally:
        platform.start_service("recovery")
    wait_until(
        lambda: api.get("/health").status_code == 200,
        timeout=30,
        message="recovery back up",
    )


def test_request_id_is_echoed_and_reaches_every_service_log(api, platform):
    request_id = f"e2e-{uuid.uuid4().hex}"
    answer = api.get("/health", headers={"X-Request-Id": request_id})
    assert answer.headers["X-Request-Id"] == request_id
    for service in ("gateway", "identity", "verification", "recovery", "registry_sync"):
        log_file = platform.log_dir / f"{service}.log"
        wait_until(
            lambda log_file=log_file: request_id in log_file.read_text(),
            timeout=5,
            message=f"request id in {service}.log",
        )


def test_unknown_path_is_problem_json_with_a_request_id(api):
    answer = api.get("/no/such/path")
    assert answer.status_code == 404
    assert answer.headers["Content-Type"].startswith("application/problem+json")
    body = answer.json()
    assert body["code"] == "not_found" and body["status"] == 404
    assert body["detail"] == "未找到"
    assert answer.headers["X-Request-Id"]
    assert "Traceback" not in answer.text


def test_openapi_docs_and_metrics_are_served(api):
    spec = api.get("/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    assert "/health" in spec["paths"]
    assert "Problem" in spec["components"]["schemas"]
    docs = api.get("/docs")
    assert docs.headers["Content-Type"].startswith("text/html")
    assert "/openapi.json" in docs.text and "/health" in docs.text
    metrics = api.get("/metrics").text
    assert (
        'entrypoint_calls_total{entrypoint="health",outcome="ok",service="gateway"}'
        in metrics
    )
    # YAML is a superset of JSON: the spec also round-trips for YAML tooling.
    assert yaml.safe_load(api.get("/openapi.json").text)["info"]["title"]


def test_capture_server_is_running(platform):
    import requests

    answer = requests.get(
        f"{platform.capture_url}/api/messages?to=13800000000", timeout=5
    )
    assert answer.status_code == 200
    assert answer.json() == []


def test_a_backend_service_exposes_its_own_prometheus_metrics(api, platform):
    import requests

    api.get("/health")
    port = platform.env["IDENTITY_METRICS_PORT"]
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    assert (
        'entrypoint_calls_total{entrypoint="health",outcome="ok",service="identity"}'
        in text
    )


def test_a_backend_service_counts_its_refusals_by_code(api, platform):
    import requests

    port = platform.env["IDENTITY_METRICS_PORT"]
    series = (
        'entrypoint_refusals_total{code="invalid_credentials",'
        'entrypoint="login",service="identity"}'
    )

    def refused_logins():
        text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        found = [line for line in text.splitlines() if line.startswith(series)]
        return float(found[0].split()[-1]) if found else 0.0

    before = refused_logins()
    answer = api.post(
        "/api/v1/sessions",
        json={"login": f"nobody-{uuid.uuid4().hex[:8]}", "password": "not the one"},
        headers={"X-Device-Id": f"metrics-{uuid.uuid4().hex[:12]}"},
    )
    assert answer.status_code == 401, answer.text
    assert answer.json()["code"] == "invalid_credentials"
    assert refused_logins() == before + 1


def test_stock_nameko_cluster_proxy_still_calls_every_service(platform):
    """`nameko shell` / ClusterRpcProxy (stock Nameko: confirms, its own reply
    queue) against services answering on the project's reply channel."""
    from nameko.standalone.rpc import ClusterRpcProxy

    from services.common.contract.vocabulary import BACKEND_SERVICES

    with ClusterRpcProxy({"AMQP_URI": platform.env["AMQP_URI"]}, timeout=10) as cluster:
        for name in BACKEND_SERVICES:
            answer = getattr(cluster, name).health()
            assert answer == {"service": name, "status": "ok", "database": "ok"}
