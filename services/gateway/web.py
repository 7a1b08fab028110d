"""Cookies of a browser session (the web pages): set by a page login, read
by the same JSON API the apps use (``auth.session_token``), cleared on log
out. The session cookie is HttpOnly; its CSRF companion is readable by our
own pages only (SameSite=Lax, and an HMAC of the session no other site can
compute)."""

import base64
import uuid
from datetime import datetime, timezone

from services.gateway.auth import (
    CSRF_COOKIE,
    DEVICE_COOKIE,
    SESSION_COOKIE,
    csrf_token,
)

__all__ = ["WebCookies", "new_device_id"]

DEVICE_COOKIE_SECONDS = 400 * 24 * 3600  # browsers cap cookies at 400 days


def new_device_id():
    return "web-" + uuid.uuid4().hex


def _truthy(value):
    return str(value).strip().lower() in ("1", "true", "yes", "on")


class WebCookies:
    def __init__(self, config):
        self.key = base64.b64decode(config.get("GATEWAY_CSRF_KEY", ""))
        self.secure = _truthy(config.get("WEB_COOKIE_SECURE", "true"))

    def _set(self, response, name, value, max_age, http_only=True):
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            path="/",
            secure=self.secure,
            httponly=http_only,
            samesite="Lax",
        )

    def set_session(self, response, token, expires_at):
        seconds = max(0, int((expires_at - datetime.now(timezone.utc)).total_seconds()))
        self._set(response, SESSION_COOKIE, token, seconds)
        self._set(response, CSRF_COOKIE, csrf_token(self.key, token), seconds, False)

    def clear_session(self, response):
        for name in (SESSION_COOKIE, CSRF_COOKIE):
            self._set(response, name, "", 0, name == SESSION_COOKIE)

    def ensure_device(self, request, response):
        """Every browser gets its own device id once (sessions are bound to it)."""
        if not request.cookies.get(DEVICE_COOKIE):
            self._set(response, DEVICE_COOKIE, new_device_id(), DEVICE_COOKIE_SECONDS)
