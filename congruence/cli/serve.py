"""`congruence serve` (the HTTP API and web page) and `congruence keys` (API keys)."""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import socket
import sys
from typing import Any

from congruence.cli.parser import Subcommands
from congruence.core.errors import InvalidInput
from congruence.core.settings import Settings


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, port: int, no_auth: bool) -> None:
    if no_auth and not is_loopback(host):
        raise InvalidInput(
            f"--no-auth is only allowed on a loopback address (127.0.0.1, ::1), not {host!r}: "
            "anyone who can reach the port could use the API"
        )
    if not 0 < port < 65536:
        raise InvalidInput(f"--port: expected 1 to 65535, got {port}")


def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


MAX_WORKERS = 64


def serve(
    settings: Settings,
    host: str,
    port: int,
    no_auth: bool,
    log_level: str = "warning",
    read_only: bool = False,
    workers: int = 1,
    ray_address: str | None = None,
    shards: int = 0,
    replicas: int = 1,
) -> int:
    """workers > 1: that many server processes on one port, each its own read-only engine
    over the same published generation (the store is published once, here, first).
    ray_address: serve the published shards (``shards``, each with ``replicas`` replicas) on
    Ray Serve at that cluster; this process is their ingress."""
    import uvicorn

    from congruence.api.app import WORKER_ENV, create_app
    from congruence.api.services import Services

    check_bind(host, port, no_auth)
    if not 1 <= workers <= MAX_WORKERS:
        raise InvalidInput(f"must be from 1 to {MAX_WORKERS}, got {workers}", field="workers")
    if (ray_address is None) != (shards == 0):
        raise InvalidInput("give --shards N with --ray-address, and --ray-address with --shards", field="shards")
    if ray_address is not None and (shards < 1 or replicas < 1 or workers > 1):
        raise InvalidInput(
            f"sharded serving: --shards and --replicas at least 1, one --workers (got {shards}, {replicas}, {workers})",
            field="shards",
        )
    if not port_free(host, port):
        raise InvalidInput(f"port {port} on {host} is already in use: pick another with --port")
    if ray_address is not None:
        from congruence.search.ray_serve import shutdown_shards

        clients = _deploy(settings, ray_address, shards, replicas, read_only)  # published first, unless read-only
        services = Services(settings, auth=not no_auth, read_only=read_only, publish=False, shards=clients)
        app = create_app(settings, services=services)
        _announce(host, port, no_auth, f", {shards} shards x {replicas} replicas on Ray at {ray_address}")
        try:
            uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)
        finally:
            shutdown_shards(shards)  # the shards' replicas end with their ingress
        return 0
    if workers > 1:
        if not read_only:
            from congruence.training.deploy import publish_current

            publish_current(settings, verify=True)
        os.environ[WORKER_ENV] = json.dumps({"auth": not no_auth, "read_only": read_only, "workers": workers})
        _announce(host, port, no_auth, f", {workers} workers")
        uvicorn.run(
            "congruence.api.app:worker_app",
            factory=True,
            workers=workers,
            host=host,
            port=port,
            log_level=log_level,
            access_log=False,
        )
        return 0
    app = create_app(settings, auth=not no_auth, read_only=read_only)
    _announce(host, port, no_auth)
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)
    return 0


def _deploy(settings: Settings, address: str, shards: int, replicas: int, read_only: bool) -> list[Any]:
    """The published shards checked against ``shards``, then started on Ray Serve."""
    from congruence.cli.shards import check_published
    from congruence.search.ray_serve import deploy_shards
    from congruence.training.deploy import publish_current

    if not read_only:
        publish_current(settings, verify=True)  # the writer's step, shards included, before any answer
    check_published(settings, shards)
    return list(deploy_shards(address, settings, shards, replicas))


def _announce(host: str, port: int, no_auth: bool, extra: str = "") -> None:
    shown = f"[{host}]" if ":" in host else host
    print(
        f"Congruence is serving on http://{shown}:{port}/  (API docs: http://{shown}:{port}/docs)"
        + extra
        + ("  [no auth: loopback only]" if no_auth else ""),
        flush=True,
    )


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    return serve(
        settings,
        args.host,
        args.port,
        args.no_auth,
        read_only=args.read_only,
        workers=args.workers,
        ray_address=args.ray_address,
        shards=args.shards,
        replicas=args.replicas,
    )


def _keys_conn(settings: Settings) -> Any:
    from congruence.store.records import Store

    return Store.open(settings)


def cmd_keys(args: argparse.Namespace, settings: Settings) -> int:
    from congruence.api.keys import create_key, list_keys, revoke_key

    with _keys_conn(settings) as store:
        if args.keys_command == "create":
            key, info = create_key(store.conn, args.name)
            if args.json:
                print(json.dumps({"key": key, **info.to_dict()}))
            else:
                print(key)
                print(
                    f"key {info.id} ({info.name}): shown once, only its hash is stored. "
                    "Send it as 'Authorization: Bearer <key>'.",
                    file=sys.stderr,
                )
        elif args.keys_command == "list":
            infos = [k.to_dict() for k in list_keys(store.conn)]
            if args.json:
                print(json.dumps({"data": infos, "count": len(infos)}))
            for k in [] if args.json else infos:
                state = "revoked" if k["revoked"] else "active"
                used = k["last_used_at"] or "never"
                print(f"{k['id']}  {state:<8} {k['name']}  created {k['created_at']}  last used {used}")
        else:
            info = revoke_key(store.conn, args.key_id)
            print(json.dumps(info.to_dict()) if args.json else f"revoked key {info.id} ({info.name})")
    return 0


def add_parsers(sub: Subcommands) -> None:
    p = sub.add_parser("serve", help="the HTTP API and web page")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1, loopback only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--no-auth", action="store_true", help="no API keys (refused unless --host is loopback)")
    p.add_argument(
        "--read-only",
        action="store_true",
        help="serve what writers published, never write (a replica; a database role with SELECT alone will do)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="server processes answering on the port, one read-only engine each (memory: one index copy each)",
    )
    p.add_argument(
        "--ray-address",
        metavar="ADDR",
        help="serve the published shards on Ray Serve at this cluster ('local' starts one here); see docs/serving.md",
    )
    p.add_argument("--shards", type=int, default=0, help="with --ray-address: how many shards (as `shards build` made)")
    p.add_argument("--replicas", type=int, default=1, help="with --ray-address: replicas of each shard (default 1)")
    p.set_defaults(func=cmd_serve)
    p = sub.add_parser("keys", help="API keys: create, list, revoke")
    ks = p.add_subparsers(dest="keys_command", required=True)
    k = ks.add_parser("create", help="create a key and print it once")
    k.add_argument("name", help="who or what the key is for")
    k.add_argument("--json", action="store_true")
    k = ks.add_parser("list", help="keys and when they were last used (never the secrets)")
    k.add_argument("--json", action="store_true")
    k = ks.add_parser("revoke", help="revoke a key by id; requests with it fail from now on")
    k.add_argument("key_id")
    k.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_keys)
