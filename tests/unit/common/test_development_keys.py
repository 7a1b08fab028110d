"""A service refuses the shipped development keys unless development mode is
said explicitly (issue #20 §7)."""

import base64
from pathlib import Path

import pytest
import yaml

from services.common.plumbing.config import development_keys, refuse_development_keys

DEV = base64.b64encode(b"dev-only-some-key-32-bytes-long!").decode()
REAL = base64.b64encode(b"\x8f" * 32).decode()


def test_a_development_key_is_refused_by_name():
    with pytest.raises(RuntimeError) as refused:
        refuse_development_keys({"ID_SEAL_KEY": DEV, "OTHER": REAL})
    assert "ID_SEAL_KEY" in str(refused.value) and "OTHER" not in str(refused.value)


@pytest.mark.parametrize("mode", ["true", "1", "yes", True])
def test_development_mode_said_explicitly_allows_them(mode):
    assert refuse_development_keys({"K": DEV, "DEVELOPMENT_MODE": mode}) == ["K"]


@pytest.mark.parametrize("mode", [None, "", "false", "0", False])
def test_anything_else_is_not_development_mode(mode):
    with pytest.raises(RuntimeError):
        refuse_development_keys({"K": DEV, "DEVELOPMENT_MODE": mode})


def test_real_keys_and_other_settings_pass():
    assert development_keys({"K": REAL, "AMQP_URI": "amqp://x", "N": 5}) == []


def test_every_shipped_fallback_is_recognised_and_deploy_never_says_development():
    root = Path(__file__).resolve().parents[3]
    for config in (root / "services").glob("*/config.yml"):
        text = config.read_text()
        fallbacks = {
            line.split(":")[0].strip(): line.split("${")[1].split(":", 1)[1].rstrip("}")
            for line in text.splitlines()
            if "ZGV2LW9ubHk" in line
        }
        assert development_keys(fallbacks) == sorted(fallbacks), config
        assert "DEVELOPMENT_MODE: ${DEVELOPMENT_MODE:false}" in text, config
    for manifest in (root / "deploy").rglob("*.y*ml"):
        for document in yaml.safe_load_all(manifest.read_text()):
            assert "DEVELOPMENT_MODE" not in str(document), manifest
