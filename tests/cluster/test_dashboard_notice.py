"""The dashboard notice says where the token comes from in each of Ray's auth set-ups."""

from __future__ import annotations

import pytest

from videxperts.cluster.local import dashboard_notice


@pytest.mark.parametrize(("env", "expected"), [
    ({}, "no token: this Ray runs without token authentication"),
    ({"RAY_AUTH_MODE": "token"}, "`ray get-auth-token` prints the token (from ~/.ray/auth_token)"),
    ({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": "/run/t"}, "the token is in /run/t"),
    ({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "x"}, "the token is $RAY_AUTH_TOKEN"),
])
def test_notice(env: dict[str, str], expected: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    text = dashboard_notice("http://127.0.0.1:8265")
    assert text.startswith("Ray dashboard: http://127.0.0.1:8265 (") and expected in text
