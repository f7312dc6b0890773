"""``warm-start``: the real warm-start benchmark (congruence/datasets/warm_start.py).

Held-out brands come with half of their taggers known (matches); the product must find the
hidden half among every other influencer. The store is the corpus ingested as it is, the head
is trained by ``congruence train --test-brands`` (which reserves some training brands for the
fusion and learns it there: nothing is tuned on the held-out brands), then each held-out brand
is matched in process through ``Engine.match_brand``, with ``signals='all'`` (the product) and
``'content'``. Baselines score the same pool: random, popularity (distinct handles a creator
worked with), the category prior (the known partners' category shares), and collaboration only
(``collab_signal``'s co-occurrence score).

Recall@k is over the pool as a whole (hidden partners found in every brand's top k over every
hidden partner; the product's lists are ``match -k 100`` plus as many as the brand has known
partners, the known dropped), and per brand group (the brand's category, groups of 3 or more).
AUC: over each brand's pool, ``match -k 1000`` first in its order, the rest tied; averaged.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import Row, Section, Table
from bench.ranking import CACHE, SHARED, cli, skipped, sync_store

KS = (10, 50, 100)
TARGET_RATIO = 1.4
TIMEOUT_S = 3600.0


@dataclass(frozen=True)
class BrandCase:
    id: str
    handle: str
    category: str
    known: list[str]
    hidden: list[str]


def auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Mann-Whitney AUC, ties counted half."""
    from scipy.stats import rankdata

    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if not n_pos or not n_neg:
        return float("nan")
    r = rankdata(scores)
    return float((r[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def list_scores(order: list[str], pool: list[str]) -> np.ndarray:
    """Scores of ``pool`` from a ranked list: the list in its order, everyone else tied last."""
    pos = {a: i for i, a in enumerate(order)}
    n = len(order)
    return np.array([n - pos[a] if a in pos else 0 for a in pool], np.float64)


def run(quick: bool) -> Section:
    from congruence.datasets.warm_start import WarmStartConfig, build_warm_start_corpus

    posts_gz = SHARED / "instagram" / "posts.jsonl.gz"
    if not posts_gz.exists():
        return skipped("warm-start", f"Instagram posts not found at {posts_gz}")
    config = WarmStartConfig(min_taggers=8, max_posts=12_000) if quick else WarmStartConfig()
    suffix = "-quick" if quick else ""
    start = time.perf_counter()
    corpus = build_warm_start_corpus(posts_gz, CACHE / f"warm-start-corpus{suffix}", config)
    built = time.perf_counter() - start
    home = CACHE / f"warm-start-home{suffix}"
    ingest, _ = sync_store(corpus, home, TIMEOUT_S)
    trained = cli(
        [
            "train",
            "--json",
            "--variants",
            "product",
            "--activate-anyway",  # the guard decides on the test brands: here they are the evaluation's
            "--test-brands",
            str(corpus / "test_brands.txt"),
            *(("--epochs", "2") if quick else ()),
        ],
        home,
        TIMEOUT_S,
    )
    return measure(corpus, home, {"corpus": built, "ingest": ingest.seconds, "train": trained.seconds}, trained.doc)


def cases(corpus: Path) -> list[BrandCase]:
    cats = {a["id"]: a.get("category", "") for a in map(json.loads, (corpus / "accounts.jsonl").open())}
    out = []
    for line in (corpus / "hidden.jsonl").open(encoding="utf-8"):
        r = json.loads(line)
        if r["hidden"]:
            out.append(BrandCase(r["brand_id"], r["handle"], cats.get(r["brand_id"], ""), r["known"], r["hidden"]))
    return out


def measure(corpus: Path, home: Path, seconds: dict[str, float], train_doc: dict[str, Any]) -> Section:
    from congruence.core.settings import load_settings
    from congruence.search.collab_rank import signals_used
    from congruence.search.engine import MAX_K, Engine
    from congruence.store.collab_signal import Partners, signal_of
    from congruence.training.fusion_model import category_share

    settings = load_settings({"CONGRUENCE_HOME": str(home)})
    brands = cases(corpus)
    ranked: dict[str, dict[str, list[str]]] = defaultdict(dict)  # method -> brand -> ranked pool
    scored: dict[str, dict[str, np.ndarray]] = defaultdict(dict)  # method -> brand -> scores over the pool
    pools: dict[str, list[str]] = {}
    used: dict[str, str] = {}
    with Engine(settings) as engine:
        snap = engine.current()
        assert snap.collabs is not None
        table, signal = snap.table, signal_of(snap.collabs)
        row_of = {a: i for i, a in enumerate(table.ids)}
        rng = np.random.default_rng(0)
        start = time.perf_counter()
        for b in brands:
            known = set(b.known)
            pool = [a for a in table.ids if a not in known]
            pools[b.id] = pool
            rows = np.array([row_of[a] for a in pool])
            p = Partners(np.array([row_of[a] for a in b.known if a in row_of]))
            own = engine.brand_partners(snap, b.id)
            assert own is not None
            used[b.id] = signals_used(snap, "all", own).describe()
            baselines: dict[str, np.ndarray] = {
                "random": rng.random(len(pool)),
                "popularity": signal.propensity(rows),
                "category prior": category_share(table, p.rows, rows),
                "collaboration only": signal.scores(signal.weights(Partners(p.rows, own.own)), rows),
            }
            for name, s in baselines.items():
                scored[name][b.id] = s
                ranked[name][b.id] = [pool[i] for i in np.lexsort((rng.random(len(s)), -s))]
            for name, signals in (("content only (--signals content)", "content"), ("the product", "all")):
                top = engine.match_brand(b.id, min(MAX_K, max(KS) + len(known)), signals=signals, snap=snap)
                ranked[name][b.id] = [h.influencer_id for h in top if h.influencer_id not in known]
                wide = engine.match_brand(b.id, 1000, signals=signals, snap=snap)
                scored[name][b.id] = list_scores([h.influencer_id for h in wide if h.influencer_id not in known], pool)
        seconds["rank"] = time.perf_counter() - start
    return section(brands, pools, ranked, scored, used, seconds, train_doc, corpus)


def _recall(ranked: dict[str, list[str]], brands: list[BrandCase], k: int) -> float:
    found = sum(len(set(ranked[b.id][:k]) & set(b.hidden)) for b in brands)
    return found / max(1, sum(len(b.hidden) for b in brands))


def section(
    brands: list[BrandCase],
    pools: dict[str, list[str]],
    ranked: dict[str, dict[str, list[str]]],
    scored: dict[str, dict[str, np.ndarray]],
    used: dict[str, str],
    seconds: dict[str, float],
    train_doc: dict[str, Any],
    corpus: Path,
) -> Section:
    def rows_for(group: list[BrandCase]) -> list[Row]:
        out: list[Row] = []
        for name in ranked:
            aucs = [auc(scored[name][b.id], np.isin(pools[b.id], b.hidden)) for b in group]
            out.append(
                {
                    "ranking": name,
                    "AUC": round(float(np.nanmean(aucs)), 3),
                    **{f"R@{k}": round(_recall(ranked[name], group, k), 3) for k in KS},
                }
            )
        return out

    whole = rows_for(brands)
    recall = {name: {k: _recall(ranked[name], brands, k) for k in (10, 50)} for name in ranked}
    product = "the product"
    checks: list[Row] = []
    for k in (10, 50):
        for other in ("content only (--signals content)", "collaboration only"):
            got, base = recall[product][k], recall[other][k]
            checks.append(
                {
                    "target": f"product R@{k} >= {TARGET_RATIO}x {other}",
                    "product": round(got, 3),
                    "needed": round(TARGET_RATIO * base, 3),
                    "ratio": round(got / base, 2) if base else None,
                    "met": got >= TARGET_RATIO * base,
                }
            )
    groups: dict[str, list[BrandCase]] = defaultdict(list)
    for b in brands:
        groups[b.category or "unknown"].append(b)
    small = [b for g in groups.values() if len(g) < 3 for b in g]
    named = {c: g for c, g in sorted(groups.items()) if len(g) >= 3}
    if small:
        named["other categories"] = small
    tables = [
        Table(
            f"{len(brands)} held-out brands, {sum(len(b.hidden) for b in brands)} hidden partners, the pool as a whole",
            whole,
        ),
        Table("targets (the pool as a whole)", checks),
    ]
    for cat, group in named.items():
        tables.append(
            Table(
                f"brand group {cat!r}: {len(group)} brands, {sum(len(b.hidden) for b in group)} hidden", rows_for(group)
            )
        )
    info = json.loads((corpus / "corpus_info.json").read_text())
    sec = Section("warm-start", tables)
    served = Counter(re.sub(r"\(\d+ known partners", "(N known partners", u) for u in used.values())
    sec.notes += [
        f"corpus: {info['influencers']} influencers, {info['brands']} brands ({info['test_brands']} held out), "
        f"seed {info['config']['seed']}; the product served: "
        + "; ".join(f"{n} brands: {what}" for what, n in served.most_common()),
        "seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in seconds.items()),
    ]
    sec.details.update(
        {
            "targets_met": all(c["met"] for c in checks),
            "train": {k: train_doc.get(k) for k in ("version", "deployed", "verdict", "split") if k in train_doc},
            "seconds": seconds,
        }
    )
    return sec
