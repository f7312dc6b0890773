"""`congruence train` and `congruence evaluate`: the congruence head's two jobs."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from congruence.cli.parser import Subcommands
from congruence.core.progress import current_board
from congruence.core.settings import Settings

if TYPE_CHECKING:
    from congruence.training.loop import EpochStats


def _table_path(args: argparse.Namespace, settings: Settings, job: str, version: str) -> Path:
    return Path(args.table) if args.table else settings.home / "reports" / f"{job}-{version}.md"


def _write_table(path: Path, title: str, results: dict) -> None:  # type: ignore[type-arg]
    from congruence.training.evaluate import markdown_table

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"# {title}\n\n" + markdown_table(results), encoding="utf-8")
    print(f"markdown table: {path}", file=sys.stderr)


def _epoch_progress(epochs: int) -> Callable[[str, EpochStats], None]:
    """Each variant's epochs on the command's progress board, with each epoch's loss as a note."""
    board = current_board()

    def update(variant: str, s: EpochStats) -> None:
        task = board.task(f"train:{variant}", f"training {variant}", "epochs", epochs)
        task.note(
            f"{variant} epoch {s.epoch + 1}: loss {s.loss:.4f} (rank {s.rank_loss:.4f}, "
            f"category {s.aux_loss:.4f}) {s.seconds:.1f}s"
        )
        task.update(1)
        if task.done >= epochs:
            task.close()

    return update


def cmd_train(args: argparse.Namespace, settings: Settings) -> int:
    from congruence.training.evaluate import markdown_table
    from congruence.training.experiment import VARIANTS
    from congruence.training.jobs import read_brand_file, read_influencer_file, train_and_deploy
    from congruence.training.loop import TrainConfig

    config = TrainConfig(
        epochs=args.epochs,
        lr=args.lr,
        batch_brands=args.batch_brands,
        list_size=args.list_size,
        loss=args.loss,
        aux_weight=args.aux_weight,
        hard_negative_fraction=args.hard_negatives,
        geometry_weight=args.geometry_weight,
        partner_memory=args.memory,
        seed=args.seed,
        device=settings.device,
    )
    test = read_brand_file(Path(args.test_brands)) if args.test_brands else None
    held = read_influencer_file(Path(args.test_influencers)) if args.test_influencers else None
    variants = tuple(VARIANTS) if args.variants == "all" else ("head",)
    out = train_and_deploy(
        settings,
        config,
        variants,
        test,
        args.test_fraction,
        activate=not args.no_activate,
        progress=_epoch_progress(args.epochs),
        d_model=args.d_model,
        test_influencers=held,
        activate_anyway=args.activate_anyway,
    )
    exp = out.experiment
    table = _table_path(args, settings, "train", out.version)
    _write_table(table, f"congruence head {out.version}: held-out brands", exp.results)
    refused = not args.no_activate and out.deployed is None
    product = exp.models.get("head")
    memory = {"brands": product.memory_brands, "weight": float(product.mem_weight)} if product is not None else None
    payload = {
        **exp.to_dict(),
        "model": {
            "version": out.version,
            "deployed": out.deployed is not None,
            "runs": str(out.run_dir),
            "beats_cosine": out.verdict.beats,
            "verdict": str(out.verdict),
            "partner_memory": memory,
        },
        "table": str(table),
    }
    if args.json:
        sys.stdout.write(json.dumps(payload) + "\n")
    else:
        print(markdown_table(exp.results), end="")
        print(f"category accuracy of held-out influencers: {exp.aux_category_accuracy}")
        state = (
            f"in service (index {out.deployed.index_kind}, {out.deployed.index_size} influencers)"
            if out.deployed
            else "saved, not activated" + ("" if refused else " (--no-activate)")
        )
        if memory is not None:
            print(f"partner memory: {memory['brands']} training brands, weight {memory['weight']:g}")
        print(f"head {out.version}: {state}; {out.verdict}")
    if refused:
        print(
            f"error: head {out.version} was not put in service: it does not beat pooled cosine on the held-out "
            f"brands ({out.verdict}); the head in service is unchanged. Pass --activate-anyway to use it "
            "regardless.",
            file=sys.stderr,
        )
        return 3
    return 0


def cmd_evaluate(args: argparse.Namespace, settings: Settings) -> int:
    from congruence.training.evaluate import markdown_table
    from congruence.training.jobs import evaluate_saved, read_brand_file, read_influencer_file

    test = read_brand_file(Path(args.test_brands)) if args.test_brands else None
    held = read_influencer_file(Path(args.test_influencers)) if args.test_influencers else None
    results, head, brands = evaluate_saved(settings, Path(args.model) if args.model else None, test, args.seed, held)
    table = _table_path(args, settings, "evaluate", head.version or "unsaved")
    _write_table(table, f"congruence head {head.version}: {len(brands)} held-out brands", results)
    if args.json:
        payload = {
            "results": {k: m.to_dict() for k, m in results.items()},
            "per_brand": {k: m.per_brand_dicts() for k, m in results.items()},
            "model": head.version,
            "test_brands": brands,
            "table": str(table),
        }
        sys.stdout.write(json.dumps(payload) + "\n")
    else:
        print(markdown_table(results), end="")
    return 0


def add_parsers(sub: Subcommands) -> None:
    p = sub.add_parser("train", help="train the congruence head on the store's matches, evaluate, deploy")
    p.add_argument(
        "--json", action="store_true", help='print {"results": {"random": M, "pooled_cosine": M, "head": M, ...}}'
    )
    p.add_argument("--test-brands", metavar="FILE", help="held-out brands, one id a line (default: a seeded 20%%)")
    p.add_argument(
        "--test-influencers",
        metavar="FILE",
        help="influencers never trained on and the only candidates "
        "of the evaluation, one id a line (default: those paired only with test brands + 20%% of the rest)",
    )
    p.add_argument("--test-fraction", type=float, default=0.2)
    p.add_argument(
        "--variants",
        choices=("all", "product"),
        default="all",
        help="all: also the shared-tower, mean-pooling and no-auxiliary ablations (default); product: the head only",
    )
    p.add_argument("--epochs", type=int, default=30, help="default 30 (the photo benchmark meets its targets there)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch-brands", type=int, default=16)
    p.add_argument("--list-size", type=int, default=32)
    p.add_argument("--loss", choices=("listnet", "listmle"), default="listnet")
    p.add_argument("--aux-weight", type=float, default=0.1, help="weight of the category task (0 disables it)")
    p.add_argument("--hard-negatives", type=float, default=0.25, help="share of negatives from the brand's category")
    p.add_argument(
        "--geometry-weight",
        type=float,
        default=0.0,
        help="weight of the loss that keeps the frozen features' neighbours in the projection (default 0: off; "
        "3 helps photo corpora, hurts the real brand-tag benchmark: docs/ranking.md)",
    )
    p.add_argument(
        "--memory",
        action="store_true",
        help="give the head a partner memory: it keeps the training brands' partners and scores candidates by "
        "those of the brands that post alike; a second head learns its weight (docs/ranking.md)",
    )
    p.set_defaults(field_options={"hard_negative_fraction": "--hard-negatives"})
    p.add_argument("--d-model", type=int, default=0, help="width of the head's embedding space (default 256)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--table", metavar="FILE", help="markdown table path (default $CONGRUENCE_HOME/reports/)")
    p.add_argument("--no-activate", action="store_true", help="save the head but keep serving the current one")
    p.add_argument(
        "--activate-anyway",
        action="store_true",
        help="put the head in service even when it does not beat pooled cosine on the held-out brands",
    )
    p.set_defaults(func=cmd_train)
    p = sub.add_parser("evaluate", help="metrics of the head in service on held-out brands, with baselines")
    p.add_argument("--json", action="store_true")
    p.add_argument(
        "--test-brands",
        metavar="FILE",
        help="brands to evaluate on, one id a line (default: every brand with matches the head was not trained on)",
    )
    p.add_argument("--test-influencers", metavar="FILE", help="the only candidates, one influencer id a line")
    p.add_argument("--model", metavar="PATH", help="a head checkpoint instead of the one in service")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--table", metavar="FILE", help="markdown table path (default $CONGRUENCE_HOME/reports/)")
    p.set_defaults(func=cmd_evaluate)
