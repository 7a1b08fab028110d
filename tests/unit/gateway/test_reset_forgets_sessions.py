"""The gateway instance that served a password reset forgets the account's
cached sessions at once: a session used right after the reset is refused
there, without waiting for identity's sessions_revoked broadcast (which
the other instances act on)."""

from nameko.testing.services import worker_factory
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from services.gateway.service import GatewayService


def test_a_password_reset_forgets_the_accounts_cached_sessions_here():
    service = worker_factory(GatewayService, config={})
    service.recovery.reset_password.return_value = {
        "reset": True,
        "logged_in": False,
        "account_id": "5b0c1c0e-0000-4000-8000-000000000001",
    }
    request = Request(
        EnvironBuilder(
            method="POST",
            path="/api/v1/password-resets",
            json={
                "login": "13812345678",
                "method": "questions",
                "answers": ["北京", "红色", "数学"],
                "new_password": "a-New-passw0rd!",
            },
            headers={"X-Device-Id": "dev-0123456789abcdef"},
        ).get_environ()
    )

    answer = service.reset_password(request)

    service.principal.forget.assert_called_once_with(
        "5b0c1c0e-0000-4000-8000-000000000001"
    )
    assert answer == (200, {"reset": True, "logged_in": False})  # not the account
