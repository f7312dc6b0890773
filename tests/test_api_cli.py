"""`congruence serve` and `congruence keys` through the CLI."""

from __future__ import annotations

import json

import httpx
import pytest

from congruence.cli.main import build_parser
from congruence.cli.serve import check_bind
from congruence.core.errors import InvalidInput
from congruence.core.settings import Settings

from .conftest import run
from .server import free_port
from .serving_proc import cli_process, listening_addresses, wait_until_up


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
    assert run(capsys, "keys", "list")[1].rstrip().endswith("last used never")  # not "None"
    assert run(capsys, "keys", "revoke", key_id)[0] == 0
    assert json.loads(run(capsys, "keys", "list", "--json")[1])["data"][0]["revoked"] is True
    assert "unknown key id 'zzz'" in run(capsys, "keys", "revoke", "zzz")[2]


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "10.0.0.1", "example.com", "127.0.0.1.nip.io"])
def test_no_auth_refused_on_every_non_loopback_address(host: str) -> None:
    with pytest.raises(InvalidInput, match="--no-auth is only allowed on a loopback address"):
        check_bind(host, 8000, no_auth=True)
    check_bind(host, 8000, no_auth=False)  # told to, with keys: allowed


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_no_auth_allowed_on_loopback(host: str) -> None:
    check_bind(host, 8000, no_auth=True)


def test_serve_binds_loopback_by_default_and_needs_keys(env: Settings) -> None:
    assert build_parser().parse_args(["serve"]).host == "127.0.0.1"
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    with cli_process("serve", "--port", str(port), until=f"serving on {url}", timeout=120) as (_, lines):
        wait_until_up(url)
        assert listening_addresses(port) == {"127.0.0.1"}
        assert "no auth" not in "".join(lines)
        r = httpx.get(url + "v1/categories", timeout=30)
        assert r.status_code == 401 and "missing API key" in r.json()["detail"]
