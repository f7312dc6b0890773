"""``congruence demo``: build the demo corpus, ingest it, train the models when none is in service,
then serve the web page (or, ``--no-serve``, print a demo brand's matches)."""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable
from pathlib import Path

from congruence.cli.parser import Subcommands
from congruence.core.settings import Settings

Command = Callable[[argparse.Namespace, Settings], int]


def add_parser(sub: Subcommands, ingest: Command, match: Command) -> None:
    """``demo``, running the CLI's ``ingest`` and ``match`` commands."""
    p = sub.add_parser("demo", help="build the demo corpus, ingest it, train, and serve the web page")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--no-serve", action="store_true", help="print matches for a demo brand instead of serving")
    p.add_argument("-k", type=int, default=10, help="with --no-serve: number of influencers")
    p.set_defaults(func=functools.partial(cmd_demo, ingest=ingest, match=match))


def cmd_demo(args: argparse.Namespace, settings: Settings, ingest: Command, match: Command) -> int:
    """Build the demo corpus if absent, ingest it, train if no model is in service, then serve."""
    from congruence.datasets.demo import BRANDS, build_demo

    corpus = settings.home / "demo-corpus"
    history = []
    if not (corpus / "accounts.jsonl").exists():
        print(f"building the demo corpus in {corpus} ...", file=sys.stderr)
        build_demo(corpus, history=True)
        history = sorted((corpus / "history").iterdir())  # the follower counts of the months before
    code = ingest(argparse.Namespace(folder=str(corpus), json=False, ray_address=None, quiet=False), settings)
    if code == 1:
        return code
    if history:
        _ingest_history(settings, history)
    _train_demo_models(settings)
    if not args.no_serve:
        from congruence.cli.serve import serve

        return serve(settings, "127.0.0.1", args.port, no_auth=True)
    brand = f"brand_{BRANDS['fitness']}"
    print(f"\nbest-matching influencers for {brand} (micro-influencers, 5k-100k followers):")
    ns = argparse.Namespace(
        brand=brand,
        images=None,
        text=None,
        k=args.k,
        json=False,
        category=None,
        min_followers=None,
        max_followers=None,
        micro=True,
        signals="all",
    )
    return match(ns, settings)


def _ingest_history(settings: Settings, folders: list[Path]) -> None:
    """The accounts' follower counts of the months before the corpus (accounts-only folders):
    each account keeps its newest count, and its history gains the older ones."""
    from congruence.indexer.ingest import ingest

    print(f"adding the follower counts of {', '.join(f.name for f in folders)} ...", file=sys.stderr)
    for folder in folders:
        ingest(folder, settings)


def _train_demo_models(settings: Settings) -> None:
    """Train the congruence head and the engagement model when none is in service (seconds on the demo)."""
    from congruence.core.errors import ModelMismatch, NotFound
    from congruence.engagement.checkpoint import require_active as load_active
    from congruence.engagement.model import EngagementConfig
    from congruence.engagement.train import train_engagement
    from congruence.store.records import Store
    from congruence.training.deploy import ACTIVE_KEY
    from congruence.training.experiment import PRODUCT
    from congruence.training.fusion_model import Fusion
    from congruence.training.jobs import train_and_deploy
    from congruence.training.loop import TrainConfig

    with Store.open(settings) as store:
        has_head = bool(store.meta().get(ACTIVE_KEY))
        try:  # a model of an older format or other encoders cannot score: the demo trains a new one
            load_active(settings, store)
            has_engagement = True
        except NotFound:
            has_engagement = False
        except ModelMismatch as e:
            print(f"the engagement model in service cannot be used ({e}); training a new one", file=sys.stderr)
            has_engagement = False
    if not has_engagement:
        print("training the engagement model on the demo's likes ...", file=sys.stderr)
        rep = train_engagement(settings, EngagementConfig(seed=0))
        state = "in service" if rep.activated else "not put in service"
        print(f"engagement model {rep.version} {state}: {rep.verdict}", file=sys.stderr)
    if not has_head:
        print("training the congruence head on the demo's matches ...", file=sys.stderr)
        held = settings.home / "demo-corpus" / "test_brands.txt"
        test = held.read_text(encoding="utf-8").split() if held.exists() else None
        out = train_and_deploy(settings, TrainConfig(epochs=30, seed=0, device=settings.device), ("head",), test, 0.2)
        state = "in service" if out.deployed else "not put in service (matches rank by pooled cosine)"
        print(f"head {out.version} {state}: {out.verdict}", file=sys.stderr)
        fusion = Fusion.from_meta(out.experiment.models[PRODUCT].meta)
        if fusion is not None:  # the demo's creators tag brands: matches also rank by who the partners worked with
            print(
                f"collaboration fusion learned on {fusion.brands} training brands ({fusion.lists} lists): "
                "a brand's matches rank by content and by who its known partners worked with",
                file=sys.stderr,
            )
