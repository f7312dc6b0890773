"""`congruence serve` and `congruence keys` through the CLI."""

from __future__ import annotations

import json

import pytest

from congruence.core.settings import Settings

from .conftest import run


def test_serve_refuses_no_auth_off_loopback(env: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "serve", "--host", "0.0.0.0", "--no-auth")
    assert code == 1 and "--no-auth is only allowed on a loopback address" in err


def test_keys_cli_prints_once_and_revokes(env: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "keys", "create", "agency x")
    key = out.strip()
    assert code == 0 and key.startswith("cgk_") and "shown once" in err
    listed = json.loads(run(capsys, "keys", "list", "--json")[1])
    assert listed["count"] == 1 and key not in json.dumps(listed) and listed["data"][0]["name"] == "agency x"
    key_id = listed["data"][0]["id"]
    assert run(capsys, "keys", "revoke", key_id)[0] == 0
    assert json.loads(run(capsys, "keys", "list", "--json")[1])["data"][0]["revoked"] is True
    assert "unknown key id 'zzz'" in run(capsys, "keys", "revoke", "zzz")[2]
