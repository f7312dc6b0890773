"""Engagement on the real Instagram posts: held-out pairwise accuracy and congruence → engagement.

``python -m bench.engagement_instagram [--epochs N] [--seed S] [--min-taggers T]``

1. Builds a README-format corpus under ``bench/.cache/engagement-corpus`` from
   ``../shared/data/instagram/posts.jsonl.gz`` with ``congruence.datasets.instagram_corpus`` (influencers:
   accounts with ≥ 2 captioned posts; brands: accounts many influencers tag, their posts
   donated by single-post authors), captions *without* the alt text, which travels in each
   post's ``extra`` as ``alt`` so the engagement model reads it as its own modality.
   Dirty rows are counted here (``dirty_rows``): what was dropped and what was repaired.
2. Ingests it into the store of ``CONGRUENCE_HOME`` / ``DATABASE_URL`` when set, otherwise a
   persistent embedded one under ``bench/.cache/engagement-home`` (ingest is incremental and
   embeddings are cached by content, so a rerun encodes nothing).
3. Trains the engagement model (``congruence.engagement.train``) on influencer accounts,
   held-out accounts seeded, and reports held-out pairwise accuracy of a constant baseline,
   a follower-count baseline and the model, and the evidence test behind suggestions
   (``congruence.engagement.evidence``): which alt-text concepts have an effect on
   within-account engagement that holds up on the held-out accounts, with intervals.
4. Runs the congruence → engagement OLS (``congruence.engagement.effect``).

Prints a table and writes ``bench/results/engagement_instagram.json``.

``--evidence-only`` runs step 3's evidence test alone on the stored posts' labels and alt-text
concepts (no encoding, no model; seconds once the posts are ingested, even before their
captions are encoded) and writes ``bench/results/engagement_instagram_evidence.json``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import os
import sys
import time
from collections import Counter
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import Row, Table, format_table, machine_info
from congruence.core.settings import Settings, load_settings
from congruence.datasets.instagram_corpus import (
    InstagramCorpusConfig,
    build_instagram_corpus,
)
from congruence.datasets.instagram_text import clean_category, clean_text
from congruence.engagement.data import load_engagement_data
from congruence.engagement.effect import analyze_engagement
from congruence.engagement.evidence import Evidence
from congruence.engagement.labels import pairwise_accuracy
from congruence.engagement.measure import measure_suggestions
from congruence.engagement.model import EngagementConfig, split_accounts
from congruence.engagement.train import (
    EngagementReport,
    read_account_file,
    split_accounts_of,
    train_engagement,
)
from congruence.indexer.ingest import ingest
from congruence.store.records import Store

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache"
SOURCE = HERE.parents[1] / "shared" / "data" / "instagram" / "posts.jsonl.gz"
RESULTS = HERE / "results"
CORPUS_CONFIG = InstagramCorpusConfig(alt_text=False, min_taggers=5)
logger = logging.getLogger("bench.engagement_instagram")


def _valid_count(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0


def dirty_rows(posts_gz: Path) -> dict[str, int]:
    """What the corpus builder drops or repairs in the source, counted row by row.

    Dropped: a shortcode seen before (the same post under two files), an empty caption (no
    image exists, so nothing is left to encode), no valid like count (no label). Repaired:
    categories that are close to a known one ("fasion", "fashion 0.5"), control characters
    in captions, an account tagging itself. Kept as unknown: a missing follower count or
    category ("by", null).
    """
    c: Counter[str] = Counter()
    seen: set[str] = set()
    with gzip.open(posts_gz, "rt", encoding="utf-8") as f:
        for raw in f:
            c["source_rows"] += 1
            row = json.loads(raw)
            code = clean_text(row.get("shortcode"))
            if code in seen:
                c["dropped_duplicate_shortcode"] += 1
                continue
            seen.add(code)
            caption = row.get("caption")
            if not clean_text(caption):
                c["dropped_empty_caption"] += 1
                continue
            if not _valid_count(row.get("likes")):
                c["dropped_invalid_likes"] += 1
                continue
            if clean_text(caption) != (caption or "").strip():
                c["repaired_caption_control_chars"] += 1
            raw_cat = row.get("category")
            cat = clean_category(raw_cat)
            if not cat:
                c["unknown_category"] += 1
            elif cat != raw_cat:
                c["repaired_category"] += 1
            if not _valid_count(row.get("followers")):
                c["unknown_followers"] += 1
            if not _valid_count(row.get("ts")):
                c["unknown_ts"] += 1
            if row.get("user") in (row.get("tagged") or ()):
                c["repaired_self_tag"] += 1
    return dict(sorted(c.items()))


def build_corpus(out: Path, seed: int, min_taggers: int) -> dict[str, Any]:
    config = replace(CORPUS_CONFIG, seed=seed, min_taggers=min_taggers)
    marker = out / "corpus_info.json"
    if marker.exists() and json.loads(marker.read_text())["config"] == asdict(config):
        return json.loads(marker.read_text())
    build_instagram_corpus(SOURCE, out, config)
    return json.loads(marker.read_text())


def store_settings() -> Settings:
    """The store named by the environment, else a persistent embedded one in the cache."""
    if os.environ.get("CONGRUENCE_HOME") or os.environ.get("DATABASE_URL"):
        return load_settings()
    return Settings(home=CACHE / "engagement-home")


def recency(corpus: Path, test: set[str]) -> tuple[float, int]:
    """Diagnostic, not a product feature: rank an account's posts by date (newer = more likes)."""
    rows = [json.loads(line) for line in (corpus / "posts.jsonl").open(encoding="utf-8")]
    rows = [r for r in rows if r["account_id"] in test and r.get("likes") is not None]
    index = {a: k for k, a in enumerate(sorted(test))}
    return pairwise_accuracy(
        np.array([float(r["ts"] or 0) for r in rows]),
        np.array([r["likes"] for r in rows]),
        np.array([index[r["account_id"]] for r in rows]),
    )


def held_out(settings: Settings, fraction: float, seed: int, path: Path) -> set[str]:
    """A seeded ``fraction`` of the influencer accounts with two or more liked posts, written to ``path``."""
    with Store.open(settings) as store:
        ids = [
            r[0]
            for r in store.conn.execute(
                "SELECT a.id FROM accounts a JOIN posts p ON p.account_id = a.id WHERE a.kind = 'influencer'"
                " AND p.likes IS NOT NULL GROUP BY a.id HAVING count(*) >= 2 ORDER BY a.id"
            )
        ]
    _, test = split_accounts(ids, fraction, seed)
    path.write_text("".join(f"{a}\n" for a in test), encoding="utf-8")
    return set(test)


def _rows(report: EngagementReport, recent: tuple[float, int]) -> list[Row]:
    labels = {
        "constant": "constant (every pair ties)",
        "followers": "follower count (constant within an account: ties)",
        "model": "engagement model (caption + alt text + followers + post stats)",
    }
    rows: list[Row] = [
        {"method": labels[k], "pairwise_accuracy": round(v.accuracy, 4), "pairs": v.pairs}
        for k, v in report.results.items()
    ]
    rows.append(
        {
            "method": "recency, diagnostic (newer post wins; unknown for a new post)",
            "pairwise_accuracy": round(recent[0], 4),
            "pairs": recent[1],
        }
    )
    rows += [
        {
            "method": "reference: Imagion model / expert / average person",
            "pairwise_accuracy": "0.5024 / 0.675 / 0.475",
            "pairs": None,
        }
    ]
    return rows


def evidence_table(ev: Evidence) -> Table:
    """Every concept tested on the held-out accounts, qualified first."""
    rows: list[Row] = [
        {
            "concept": e.name,
            "kind": e.kind,
            "qualified": e.qualified,
            "lift": None if not np.isfinite(e.lift) else round(e.lift, 3),
            "ci95": "-" if not np.isfinite(e.low) else f"{e.low:+.3f} to {e.high:+.3f}",
            "posts": e.posts,
            "accounts": e.accounts,
            "train_lift": round(e.train_lift, 3),
            "train_accounts": e.train_accounts,
        }
        for e in ev.effects
    ]
    return Table(
        f"concepts with an effect on within-account engagement: {len(ev.qualified)} of {len(ev.effects)} "
        f"tested on held-out accounts qualify ({ev.screened} screened)",
        rows,
    )


def evidence_only(settings: Settings, test_file: Path, seed: int) -> tuple[Evidence, dict[str, int]]:
    """The evidence test of ``train_engagement`` on the stored posts, without embeddings or a model."""
    with Store.open(settings) as store:
        data = load_engagement_data(store, None)
    train_acc, test_acc = split_accounts_of(data, read_account_file(test_file), 0.2, seed)
    train_rows, test_rows = data.accounts_rows(train_acc), data.accounts_rows(test_acc)
    evidence = measure_suggestions(data, train_rows, test_rows, None, seed).evidence
    return evidence, {
        "train_accounts": len(train_acc),
        "test_accounts": len(test_acc),
        "train_posts": len(train_rows),
        "test_posts": len(test_rows),
        "posts_with_alt_concepts": int(data.features.hand_mask[:, -1].sum()),
    }


def _evidence_main(settings: Settings, test_file: Path, seed: int, out: Path) -> int:
    t0 = time.perf_counter()
    evidence, split = evidence_only(settings, test_file, seed)
    print(json.dumps(split))
    print(format_table(evidence_table(evidence)))
    payload = {
        "split": split,
        "evidence": evidence.to_dict(),
        "seconds": round(time.perf_counter() - t0, 1),
        "machine": machine_info(),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"\nwritten: {out}")
    return 0


def source_ready() -> bool:
    """Log at INFO, and say so (False) when the real posts are absent."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if SOURCE.exists():
        return True
    print(f"real Instagram posts not found at {SOURCE}", file=sys.stderr)
    return False


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.engagement_instagram", description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=EngagementConfig.epochs)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--min-taggers", type=int, default=CORPUS_CONFIG.min_taggers)
    p.add_argument("--test-fraction", type=float, default=0.2)
    p.add_argument("--out", type=Path, default=None, help="default: bench/results/engagement_instagram[_evidence].json")
    p.add_argument("--evidence-only", action="store_true", help="the evidence test alone (no encoding, no model)")
    a = p.parse_args(argv)
    out = a.out or RESULTS / ("engagement_instagram_evidence.json" if a.evidence_only else "engagement_instagram.json")
    if not source_ready():
        return 1
    t0 = time.perf_counter()
    dirty = dirty_rows(SOURCE)
    corpus = CACHE / "engagement-corpus"
    info = build_corpus(corpus, a.seed, a.min_taggers)
    settings = store_settings()
    test_file = CACHE / "engagement-test-accounts.txt"
    if a.evidence_only:
        held_out(settings, a.test_fraction, a.seed, test_file)
        return _evidence_main(settings, test_file, a.seed, out)
    ing = ingest(corpus, settings)
    test = held_out(settings, a.test_fraction, a.seed, test_file)
    config = EngagementConfig(epochs=a.epochs, seed=a.seed)
    report = train_engagement(
        settings,
        config,
        read_account_file(test_file),
        progress=lambda e: logger.info(
            "model %d, epoch %d: loss %.4f, validation %.4f", e.member + 1, e.epoch + 1, e.loss, e.val_accuracy
        ),
    )
    recent = recency(corpus, test)
    effect = analyze_engagement(settings)
    table = Table(
        f"held-out pairwise accuracy, {report.n_test_accounts} Instagram accounts "
        f"(trained on {report.n_train_accounts})",
        _rows(report, recent),
    )
    print(format_table(table))
    print("\n" + format_table(evidence_table(report.evidence)))
    print(f"\ncongruence -> engagement (OLS): {json.dumps(effect.to_dict(), indent=2)}")
    print(f"\ndirty rows: {json.dumps(dirty)}")
    payload = {
        "dirty_rows": dirty,
        "corpus": {k: v for k, v in info.items() if k != "config"},
        "ingest": {"posts_new": ing.posts_new, "rejected": len(ing.rejected), "seconds": ing.seconds},
        "engagement": report.to_dict(),
        "recency_diagnostic": {"pairwise_accuracy": recent[0], "pairs": recent[1]},
        "congruence_effect": effect.to_dict(),
        "seconds": round(time.perf_counter() - t0, 1),
        "machine": machine_info(),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"\nwritten: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
