"""A real `nameko run` of a service on the shipped development keys, without
DEVELOPMENT_MODE, refuses to start and names the keys (issue #20 §7)."""

import os
import subprocess
import sys

from services.common.plumbing.migrate import SERVICES_ROOT


def test_a_service_refuses_to_start_on_development_keys(rabbit_config):
    env = {**os.environ, "DEVELOPMENT_MODE": "false",
           "AMQP_URI": rabbit_config["AMQP_URI"]}  # fmt: skip
    started = subprocess.run(
        [
            sys.executable,
            "-m",
            "nameko",
            "run",
            "--config",
            str(SERVICES_ROOT / "identity" / "config.yml"),
            "services.identity.service",
        ],  # fmt: skip
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert started.returncode != 0
    assert "refusing to start with development keys" in started.stderr
    assert "ID_SEAL_KEY" in started.stderr and "SESSION_TOKEN_KEY" in started.stderr
