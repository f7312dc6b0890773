"""Engagement on the demo corpus: held-out accuracy, what qualifies for suggestions, and what three real photos get.

``python -m bench.engagement_demo [--seed S]``

Builds the demo corpus (``congruence.datasets.demo``, the one ``make demo`` serves: its likes
follow brightness) under ``bench/.cache/engagement-demo-corpus``, ingests it into a persistent
embedded store under ``bench/.cache/engagement-demo-home`` (incremental), trains the engagement
model as the demo does, prints every concept tested on the held-out accounts and what three
real photos (``../shared/data/photos``: a castle, bananas, a flamingo; skipped when absent)
are suggested. Writes ``bench/results/engagement_demo.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from PIL import Image

from bench.common import format_table, machine_info
from bench.engagement_instagram import evidence_table
from congruence.core.settings import Settings
from congruence.datasets.demo import build_demo
from congruence.engagement.model import EngagementConfig
from congruence.engagement.service import Scorer, suggestion_text
from congruence.engagement.train import train_engagement
from congruence.indexer.ingest import ingest
from congruence.store.records import Store

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache"
PHOTOS = HERE.parents[1] / "shared" / "data" / "photos"
PHOTO_CLASSES = ("castle", "banana", "flamingo")


def photos_scored(scorer: Scorer) -> list[dict[str, object]]:
    """The first photo of each of PHOTO_CLASSES, scored together; [] without the photos."""
    paths = [p for c in PHOTO_CLASSES if (PHOTOS / c).is_dir() for p in sorted((PHOTOS / c).glob("*.jpg"))[:1]]
    if not paths:
        return []
    scores = scorer.score([Image.open(p).convert("RGB") for p in paths])
    return [
        {"photo": f"{p.parent.name}/{p.name}", "score": s.score, "rank": s.rank, "suggestion": suggestion_text(s)}
        for p, s in zip(paths, scores, strict=True)
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.engagement_demo", description=__doc__.split("\n")[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=HERE / "results" / "engagement_demo.json")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    t0 = time.perf_counter()
    corpus = CACHE / "engagement-demo-corpus"
    if not (corpus / "posts.jsonl").exists():
        build_demo(corpus)
    settings = Settings(home=CACHE / "engagement-demo-home")
    ingest(corpus, settings)
    # in service whatever it scores: this bench reports what the demo's model does
    report = train_engagement(settings, EngagementConfig(seed=a.seed), activate_anyway=True)
    with Store.open(settings) as store:
        scorer = Scorer.load(settings, store)
    photos = photos_scored(scorer)
    print(scorer.basis.sentence())
    print("\n" + format_table(evidence_table(report.evidence)))
    for row in photos:
        print(f"\n{row['photo']}: {row['score']:.2f} / 10 (rank {row['rank']})\n  {row['suggestion']}")
    payload = {
        "engagement": report.to_dict(),
        "basis": scorer.basis.to_dict(),
        "photos": photos,
        "seconds": round(time.perf_counter() - t0, 1),
        "machine": machine_info(),
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"\nwritten: {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
