"""`congruence shards build`: the store published in N shards, for sharded serving."""

from __future__ import annotations

import argparse
import json
import sys

from congruence.cli.parser import Subcommands
from congruence.core.errors import InvalidInput
from congruence.core.settings import Settings

MAX_SHARDS = 4096


def check_published(settings: Settings, shards: int) -> None:
    """Refuse when the store is not published in ``shards`` shards (``shards build`` makes them)."""
    from congruence.indexer.publish import NotPublished, read_publication, shard_count
    from congruence.store.pool import StorePool

    with StorePool.open(settings, max_size=1) as pool, pool.reading() as store:
        published = shard_count(read_publication(store)[1])
    if published != shards:
        raise NotPublished(
            f"the store is published in {published} shards, not {shards}:"
            f" run `congruence shards build --shards {shards}`"
        )


def cmd_shards_build(args: argparse.Namespace, settings: Settings) -> int:
    from congruence.training.deploy import in_service, publish_current

    if not 1 <= args.shards <= MAX_SHARDS:
        raise InvalidInput(f"must be from 1 to {MAX_SHARDS}, got {args.shards}", field="shards")
    ran: list[dict] = []
    if args.ray_address is not None:
        from congruence.indexer.ray_shards import build_on_ray

        pub, ran = build_on_ray(settings, args.ray_address, args.shards, in_service(settings))
    else:
        pub = publish_current(settings, shards=args.shards)
    doc = {
        "generation": pub.generation,
        "shards": {
            space: [{"shard": i, "accounts": p.count, "kind": p.kind, "folder": p.folder} for i, p in enumerate(ps)]
            for space, ps in pub.shards.items()
        },
    } | ({"ray": ran} if args.ray_address is not None else {})
    if args.json:
        sys.stdout.write(json.dumps(doc) + "\n")
        return 0
    for space, ps in pub.shards.items():
        sizes = ", ".join(str(p.count) for p in ps)
        print(f"{space}: {len(ps)} shards of {sizes} influencers ({ps[0].kind})")
    print(f"published as generation {pub.generation}: serve them with `congruence serve --ray-address ADDR --shards N`")
    return 0


def add_parser(sub: Subcommands) -> None:
    p = sub.add_parser("shards", help="sharded serving: the store's indexes split by account into N shards")
    ss = p.add_subparsers(dest="shards_command", required=True)
    b = ss.add_parser("build", help="write the shards' indexes from PostgreSQL and publish them (incremental)")
    b.add_argument("--shards", type=int, required=True, help="how many shards (accounts split by a hash of their id)")
    b.add_argument("--ray-address", metavar="ADDR", help="build the shards on this Ray cluster ('local': one here)")
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=cmd_shards_build)
