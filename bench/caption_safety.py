"""Precision and recall of the brand-safety screen's caption side on real Instagram captions.

Labels: ``bench/caption_safety_labels.csv``, one row per post (its shortcode in
``../shared/data/instagram/posts.jsonl.gz``; the captions are not copied), read and labelled
by hand with the categories of ``congruence/safety/categories.py``. Strata: ``random``, 300
captions drawn uniformly (seed 20) from the posts with a caption; ``alt_drink``, 100 drawn
from the posts whose Instagram alt text mentions a drink (more positives; an alt text is
not something the caption screen reads). Labelling rules, fixed before reading: adult =
sexual or explicit references (not "sexy", a swimsuit or a nude lipstick); arms = guns,
weapons, ammunition; drugs = alcohol, tobacco, vaping or drugs named or clearly presented
(an emoji alone, a toast to the new year, coffee or kombucha are not); hate_profanity =
swearing (not "damn") and slurs; violence = violence, abuse, death, war (not "killing it").
The word lists were written before the captions were read and were not changed after.

Reported per category and for "any category": true and false positives, misses, precision
and recall of the words alone, of the caption-embedding similarity alone, and of both (the
product's screen), on the random stratum and on all labelled captions; and the similarity
threshold's effect (in-sample: the product's threshold was set before these labels).
"""

from __future__ import annotations

import csv
import gzip
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.common import Row, Section, Table
from bench.ranking import SHARED, skipped
from congruence.core.settings import load_settings
from congruence.encoders.encoder_set import EncoderSet
from congruence.safety.categories import NAMES
from congruence.safety.screen import CAPTION_MIN_COS, Screener

LABELS = Path(__file__).resolve().parent / "caption_safety_labels.csv"


@dataclass(frozen=True)
class Labelled:
    shortcode: str
    stratum: str
    categories: frozenset[str]
    caption: str


def load(posts_gz: Path) -> list[Labelled]:
    with LABELS.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    want = {r["shortcode"] for r in rows}
    captions: dict[str, str] = {}
    with gzip.open(posts_gz, "rt", encoding="utf-8") as f:
        for line in f:
            p = json.loads(line)
            if p.get("shortcode") in want:
                captions[p["shortcode"]] = p.get("caption") or ""
    return [
        Labelled(
            r["shortcode"],
            r["stratum"],
            frozenset(c for c in r["categories"].split(";") if c),
            captions[r["shortcode"]],
        )
        for r in rows
        if r["shortcode"] in captions
    ]


def scores(truth: Sequence[frozenset[str]], got: Sequence[frozenset[str]], category: str | None) -> Row:
    """tp, fp, fn, precision, recall for one category (None: any category)."""

    def has(s: frozenset[str]) -> bool:
        return bool(s) if category is None else category in s

    tp = sum(has(t) and has(g) for t, g in zip(truth, got, strict=True))
    fp = sum(not has(t) and has(g) for t, g in zip(truth, got, strict=True))
    fn = sum(has(t) and not has(g) for t, g in zip(truth, got, strict=True))
    return {
        "positives": tp + fn,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "precision": round(tp / (tp + fp), 3) if tp + fp else None,
        "recall": round(tp / (tp + fn), 3) if tp + fn else None,
    }


def run(quick: bool = False) -> Section:
    posts_gz = SHARED / "instagram" / "posts.jsonl.gz"
    if not posts_gz.exists():
        return skipped("caption-safety", f"Instagram posts not found at {posts_gz}")
    items = load(posts_gz)
    settings = load_settings({})
    screener = Screener(settings)
    embs = EncoderSet(settings).text.encode([i.caption for i in items], normalize=True)

    def flags(source: str, min_cos: float = CAPTION_MIN_COS) -> list[frozenset[str]]:
        out = []
        for item, emb in zip(items, embs, strict=True):
            fl = screener.caption_flags(item.shortcode, item.caption, emb, min_cos)
            out.append(frozenset(f.category for f in fl if source == "both" or f.source == source))
        return out

    screens = {"words": flags("words"), "caption similarity": flags("caption"), "both (product)": flags("both")}
    section = Section("caption-safety")
    for stratum in ("random", "all"):
        idx = [i for i, it in enumerate(items) if stratum == "all" or it.stratum == stratum]
        truth = [items[i].categories for i in idx]
        rows: list[Row] = []
        for name, got in screens.items():
            for cat in (None, *NAMES):
                row = scores(truth, [got[i] for i in idx], cat)
                if row["positives"] or row["fp"]:
                    rows.append({"screen": name, "category": cat or "any", **row})
        section.tables.append(Table(f"caption screen, {stratum} captions (n={len(idx)})", rows))
    sweep: list[Row] = []
    truth_all = [it.categories for it in items]
    for t in (0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6):
        sweep.append({"min cosine": t, **scores(truth_all, flags("both", t), None)})
    section.tables.append(Table("threshold of the caption similarity, all captions, any category (in-sample)", sweep))
    section.details.update(
        {
            "n": len(items),
            "strata": {s: sum(it.stratum == s for it in items) for s in ("random", "alt_drink")},
            "labels": str(LABELS),
            "threshold": CAPTION_MIN_COS,
        }
    )
    section.notes.append(
        f"{len(items)} captions labelled by reading them ({LABELS.name}, shortcodes only); "
        "see the module doc for the sampling and the labelling rules"
    )
    return section
