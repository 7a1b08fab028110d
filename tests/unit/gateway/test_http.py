"""The gateway's error mapping, built without a broker: every error class
gets its status, problem details are bilingual, 429 carries Retry-After."""

import json

import pytest
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from services.common.contract import errors
from services.gateway.http import STATUS_BY_ERROR, ApiHandler, problem_response
from services.gateway.openapi import build_spec, render_docs
from services.gateway.service import GatewayService


def request(lang="zh-CN"):
    return Request(EnvironBuilder(headers={"Accept-Language": lang}).get_environ())


@pytest.mark.parametrize(
    "cls,status",
    [
        (errors.InvalidRequest, 400),
        (errors.Unauthenticated, 401),
        (errors.Forbidden, 403),
        (errors.NotFound, 404),
        (errors.Conflict, 409),
        (errors.RuleViolation, 422),
        (errors.Throttled, 429),
        (errors.ServiceUnavailable, 503),
        (errors.DeadlineExceeded, 504),
        (errors.ServiceError, 500),
    ],
)
def test_each_error_class_maps_to_its_status(cls, status):
    handler = ApiHandler("GET", "/x")
    response = handler.problem_from_exception(cls(), request())
    assert response.status_code == status
    body = json.loads(response.get_data())
    assert body["status"] == status and body["code"] == cls.default_code
    assert response.content_type.startswith("application/problem+json")


def test_every_error_class_has_a_status():
    mapped = {cls for cls, _ in STATUS_BY_ERROR}
    assert set(errors.ALL_ERROR_CLASSES) <= mapped


def test_unexpected_exception_is_a_500_without_any_trace():
    handler = ApiHandler("GET", "/x")
    response = handler.problem_from_exception(KeyError("secret internals"), request())
    assert response.status_code == 500
    text = response.get_data(as_text=True)
    assert "secret" not in text and "KeyError" not in text and "Traceback" not in text
    assert json.loads(text)["code"] == "internal_error"


def test_throttled_problem_has_retry_after_header_and_extra_members():
    response = problem_response(429, "resend_too_soon", request(), {"retry_after": 37})
    assert response.headers["Retry-After"] == "37"
    assert json.loads(response.get_data())["retry_after"] == 37


def test_detail_follows_accept_language_chinese_first():
    zh = json.loads(problem_response(404, "not_found", request("zh-CN")).get_data())
    en = json.loads(problem_response(404, "not_found", request("en-GB")).get_data())
    assert zh["detail"] == "未找到" and en["detail"] == "Not found."
    assert zh["message_en"] == en["message_en"]


def declared_routes():
    """(METHOD, path) of every ``@endpoint`` on the gateway class."""
    routes = set()
    for attr in dir(GatewayService):
        meta = getattr(getattr(GatewayService, attr), "openapi", None)
        if meta:
            routes.add((meta["method"].upper(), meta["path"]))
    return routes


def test_openapi_lists_every_declared_endpoint_and_the_problem_schema():
    spec = build_spec(GatewayService)
    published = {
        (method.upper(), path)
        for path, operations in spec["paths"].items()
        for method in operations
    }
    routes = declared_routes()
    assert len(routes) >= 20 and any(p.startswith("/api/v1/") for _, p in routes)
    # Every route is published, and nothing is published that is not routed.
    assert published == routes
    assert spec["components"]["schemas"]["Problem"]["required"]
    docs = render_docs(spec)
    for method, path in routes:
        assert f"<code>{method}</code></td><td><code>{path}</code>" in docs
        operation = spec["paths"][path][method.lower()]
        # Every operation documents its success and at least one problem
        # (a SCIM Error document under /scim/, RFC 7644 §3.12).
        assert any(status.startswith("2") for status in operation["responses"])
        error_type = (
            "application/scim+json"
            if path.startswith("/scim/")
            else "application/problem+json"
        )
        assert any(
            error_type in response.get("content", {})
            for status, response in operation["responses"].items()
            if status.startswith(("4", "5"))
        ), (method, path)
