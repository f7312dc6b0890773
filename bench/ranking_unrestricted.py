"""Held-out photo brands ranked against every influencer, as the product's ``match`` does.

The benchmark (``bench.ranking``) ranks each held-out brand against the held-out side's
influencers only. The product ranks against all of them, and the training side holds
influencers of the same niches, labelled with training brands: for a held-out brand they
are "not partners" by construction, though they post what its partners post. This script
counts, in each held-out brand's first 10 among all influencers, the labelled partners,
the plausible ones (an influencer whose niche is one the brand targets, on either side)
and the training-side ones, per brand group, for pooled cosine, the shared head and the
two-tower head of the newest run in a home that ``python -m bench --only ranking-photos``
trained (heads are saved there with ``--no-activate``)::

    python -m bench.ranking_unrestricted [--home bench/.cache/photos-home] [--corpus bench/.cache/photos-corpus]
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import Row, Section, Table
from bench.ranking import newest_head, standalone
from congruence.core.settings import load_settings
from congruence.store.postsets import PostSets
from congruence.training.checkpoint import load_head
from congruence.training.evaluate import head_scorer, pooled_cosine
from congruence.training.jobs import load_training_data

Scorer = Callable[[PostSets, np.ndarray, np.ndarray], np.ndarray]
K = 10


def scorers(models_dir: Path) -> tuple[str, dict[str, Scorer]]:
    """The newest run's product head and its ``shared`` variant, beside pooled cosine."""
    head = newest_head(models_dir, "ranking-photos")
    shared = load_head(models_dir / "runs" / head.stem / "shared.pt")
    return head.stem, {
        "pooled_cosine": pooled_cosine,
        "shared": head_scorer(shared),
        "head": head_scorer(load_head(head)),
    }


def first_k_counts(
    scores: np.ndarray,
    brands: list[str],
    cand_ids: list[str],
    accounts: dict[str, dict[str, Any]],
    partners: dict[str, set[str]],
) -> dict[str, dict[str, float]]:
    """Group -> sums over its brands of partners, plausible and training-side influencers in the first K."""
    out: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for j, brand in enumerate(brands):
        shown = [cand_ids[t] for t in np.argsort(-scores[j], kind="stable")[:K]]
        targets = set(accounts[brand]["targets"])
        for group in ("all", accounts[brand]["brand_kind"].split(":")[0]):
            row = out[group]
            row["brands"] += 1
            row["partners"] += sum(i in partners[brand] for i in shown)
            row["plausible"] += sum(accounts[i].get("niche") in targets for i in shown)
            row["training side"] += sum(accounts[i].get("side") == "train" for i in shown)
    return out


def run(home: Path, corpus: Path) -> Section:
    settings = load_settings({**os.environ, "CONGRUENCE_HOME": str(home)})
    data = load_training_data(settings)
    ps = data.postsets
    version, by_method = scorers(settings.models_dir)
    accounts = {a["id"]: a for a in map(json.loads, (corpus / "accounts.jsonl").open(encoding="utf-8"))}
    brands = [ln.strip() for ln in (corpus / "test_brands.txt").read_text().splitlines() if ln.strip()]
    index = ps.index_of()
    brand_rows = np.asarray([index[b] for b in brands], dtype=np.int64)
    cand_rows = np.asarray([i for i, k in enumerate(ps.kinds) if k == "influencer"], dtype=np.int64)
    cand_ids = [ps.account_ids[i] for i in cand_rows]
    partners: dict[str, set[str]] = defaultdict(set)
    for b, i in data.pairs:
        partners[b].add(i)
    rows: list[Row] = []
    for method, scorer in by_method.items():
        counts = first_k_counts(np.asarray(scorer(ps, brand_rows, cand_rows)), brands, cand_ids, accounts, partners)
        for group in ("all", "direct", "cross", "lookalike"):
            c = counts[group]
            rows.append(
                {
                    "method": method,
                    "brands": group,
                    "n": int(c["brands"]),
                    f"partners in first {K}": int(c["partners"]),
                    f"plausible in first {K}": int(c["plausible"]),
                    f"training side in first {K}": int(c["training side"]),
                }
            )
    section = Section(
        "ranking-unrestricted", [Table(f"held-out brands against all {cand_rows.size} influencers", rows)]
    )
    section.notes.append(f"head {version} of {home}; plausible: the influencer's niche is one the brand targets")
    section.details.update({"home": str(home), "corpus": str(corpus), "version": version})
    return section


def main(argv: list[str] | None = None) -> int:
    return standalone(argv, "bench.ranking_unrestricted", __doc__ or "", "photos-home", "photos-corpus", run)


if __name__ == "__main__":
    raise SystemExit(main())
