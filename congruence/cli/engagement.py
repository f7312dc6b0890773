"""`congruence score`, `congruence engagement train` and `congruence analyze engagement`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from congruence.cli.parser import Subcommands
from congruence.core.settings import Settings

if TYPE_CHECKING:
    from congruence.engagement.evidence import Evidence
    from congruence.engagement.model import EpochLog


def _out(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, default=str) + "\n")


def _captions(args: argparse.Namespace) -> list[str | None] | None:
    caps = args.caption or []
    if not caps:
        return None
    if len(caps) == 1:
        return [caps[0]] * len(args.images)
    if len(caps) != len(args.images):
        raise ValueError(f"give one --caption for all images or one per image ({len(args.images)}), got {len(caps)}")
    return list(caps)


def cmd_score(args: argparse.Namespace, settings: Settings) -> int:
    from congruence.encoders.images import read_image
    from congruence.engagement.service import Scorer, suggestion_text
    from congruence.store.records import Store

    captions = _captions(args)
    images = [read_image(Path(p))[0] for p in args.images]
    with Store.open(settings) as store:
        scorer = Scorer.load(settings, store)
    scores = scorer.score(images, captions)
    if args.json:
        data = [{**s.to_dict(), "image": p} for s, p in zip(scores, args.images, strict=True)]
        _out(
            {
                "data": data,
                "count": len(data),
                "ranking": [args.images[i] for i in _order(scores)],
                "model": scorer.version,
                "note": scorer.note,
                "basis": scorer.basis.to_dict(),
            }
        )
        return 0
    print(f"{'rank':>4}  {'score':>5}  image")
    for i in _order(scores):
        s = scores[i]
        print(f"{s.rank:>4}  {s.score:5.2f}  {args.images[i]}")
        print(f"{'':>13}{suggestion_text(s)}")
    if scorer.note:
        print(f"note: {scorer.note}")
    print(scorer.basis.sentence())
    return 0


def _order(scores: list) -> list[int]:  # type: ignore[type-arg]
    return sorted(range(len(scores)), key=lambda i: scores[i].rank)


def _epoch_line(log: EpochLog) -> None:
    print(
        f"model {log.member + 1}, epoch {log.epoch + 1}: loss {log.loss:.4f}, "
        f"validation pairwise accuracy {log.val_accuracy:.4f} ({log.seconds:.1f}s)",
        file=sys.stderr,
    )


def cmd_engagement_train(args: argparse.Namespace, settings: Settings) -> int:
    from congruence.engagement.model import EngagementConfig
    from congruence.engagement.train import read_account_file, train_engagement

    # options left out keep EngagementConfig's defaults, the settings measured on real posts
    given = {
        k: getattr(args, k)
        for k in ("epochs", "hidden", "lr", "members", "regression_weight")
        if getattr(args, k) is not None
    }
    config = EngagementConfig(**given, seed=args.seed)
    test = read_account_file(Path(args.test_accounts)) if args.test_accounts else None
    report = train_engagement(
        settings,
        config,
        test,
        args.test_fraction,
        activate=not args.no_activate,
        progress=None if args.json else _epoch_line,
        activate_anyway=args.activate_anyway,
    )
    refused = not args.no_activate and not report.activated
    if args.json:
        _out(report.to_dict())
    else:
        print(f"held-out pairwise accuracy ({report.n_test_accounts} accounts):")
        for name, acc in report.results.items():
            print(f"  {name:<10} {acc.accuracy:.4f}  ({acc.pairs} pairs)")
        print("  reference: Imagion 0.5024, expert 0.675, average person 0.475")
        _evidence_lines(report.evidence)
        state = "in service" if report.activated else "saved, not activated" + ("" if refused else " (--no-activate)")
        print(f"engagement model {report.version}: {state}; {report.verdict}")
    if refused:
        kept = f"the model in service ({report.serving}) stays" if report.serving else "no model is in service"
        print(
            f"error: engagement model {report.version} was not put in service: {report.verdict.refusal()}; {kept}. "
            "Pass --activate-anyway to use it regardless.",
            file=sys.stderr,
        )
        return 3
    return 0


def _evidence_lines(evidence: Evidence) -> None:
    from congruence.engagement.suggest import claim

    good = evidence.qualified
    print(
        f"concepts with a measured effect: {len(good)} of {len(evidence.effects)} tested on held-out accounts "
        f"({evidence.screened} screened)"
    )
    for e in good:
        print(f"  {claim(e)}")


def cmd_analyze_engagement(args: argparse.Namespace, settings: Settings) -> int:
    from congruence.engagement.effect import analyze_engagement

    res = analyze_engagement(settings)
    if args.json:
        _out(res.to_dict())
    else:
        lo, hi = res.ci
        print(
            f"congruence coefficient {res.coef:+.4f} (95% CI {lo:+.4f} to {hi:+.4f}), p = {res.p_value:.3g}, "
            f"R² = {res.r2:.4f}, n = {res.n} posts of {res.n_accounts} accounts"
        )
        print(res.reading)
    return 0


def add_parsers(sub: Subcommands) -> None:
    p = sub.add_parser("score", help="each image's expected success 0-10 and which will get more attention")
    p.add_argument("images", nargs="+", metavar="IMG")
    p.add_argument(
        "--caption",
        action="append",
        metavar="TEXT",
        help="the post's caption: once for all images, or once per image in order",
    )
    p.add_argument("--json", action="store_true", help='print {"data": [{index, score, rank, suggestions}], ...}')
    p.set_defaults(func=cmd_score)

    eng = sub.add_parser("engagement", help="the engagement model").add_subparsers(
        dest="engagement_command", required=True
    )
    p = eng.add_parser("train", help="train on the store's liked posts, evaluate on held-out accounts, deploy")
    p.add_argument("--json", action="store_true")
    p.add_argument("--test-accounts", metavar="FILE", help="held-out accounts, one id a line (default: a seeded 20%%)")
    p.add_argument("--test-fraction", type=float, default=0.2)
    # no defaults here (importing torch to read them would slow every command): see EngagementConfig
    p.add_argument("--epochs", type=int, help="training epochs of each MLP (default 40)")
    p.add_argument("--hidden", type=int, help="MLP width (default 128)")
    p.add_argument("--lr", type=float, help="learning rate (default 3e-4)")
    p.add_argument("--members", type=int, help="MLPs (seeds) averaged with the pairwise linear model (default 3)")
    p.add_argument("--regression-weight", type=float, help="MSE weight next to the pairwise loss (default 0.5)")
    p.add_argument("--seed", type=int, default=0)
    serve = p.add_mutually_exclusive_group()
    serve.add_argument("--no-activate", action="store_true", help="save the model but keep serving the current one")
    serve.add_argument(
        "--activate-anyway",
        action="store_true",
        help="put it in service even if it does not beat the baselines on the held-out accounts",
    )
    p.set_defaults(func=cmd_engagement_train)

    ana = sub.add_parser("analyze", help="analyses of the corpus").add_subparsers(dest="analyze_command", required=True)
    p = ana.add_parser("engagement", help="OLS of engagement on brand–influencer congruence, with controls")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_analyze_engagement)
