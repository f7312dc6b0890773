"""Metrics per group of held-out brands (e.g. direct vs cross kinds), from `congruence train`'s JSON.

The CLI reports averages over all test brands and, under ``per_brand``, each brand's own
metrics; whether raw similarity fails where the benchmark says it should (cross kinds)
shows in the per-group means. Every group is ranked against the same candidates.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import Row

# per-brand keys of the CLI's JSON -> column names
COLUMNS = (
    ("auc", "AUC"),
    ("cauc", "cAUC"),
    ("recall_at_10", "R@10"),
    ("recall_at_50", "R@50"),
    ("reciprocal_rank", "MRR"),
)


def brand_groups(corpus: Path) -> dict[str, str]:
    """brand id -> group: the part of the ``brand_kind`` field before ':' ("direct", "cross");
    empty when the corpus does not describe brand kinds."""
    groups = {}
    with (corpus / "accounts.jsonl").open(encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            if row.get("kind") == "brand" and isinstance(row.get("brand_kind"), str):
                groups[row["id"]] = row["brand_kind"].split(":", 1)[0]
    return groups


def _mean(values: Sequence[Any]) -> float | None:
    """Mean of the numbers among ``values`` (the CLI writes nan as null); None if there are none."""
    a = np.asarray([v for v in values if isinstance(v, (int, float))], dtype=np.float64)
    return float(a.mean()) if a.size else None


def group_rows(per_brand: Mapping[str, Sequence[Mapping[str, Any]]], groups: Mapping[str, str]) -> list[Row]:
    """One row per (method, group): the mean of each per-brand metric, brands and mean positives."""
    rows: list[Row] = []
    for method, brands in per_brand.items():
        by_group: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
        for b in brands:
            by_group[groups.get(str(b["brand_id"]), "?")].append(b)
        for group in sorted(by_group):
            bs = by_group[group]
            row: Row = {"method": method, "brands": group}
            row.update({label: _mean([b.get(key) for b in bs]) for key, label in COLUMNS})
            row.update({"n": len(bs), "positives": _mean([b.get("n_positives") for b in bs])})
            rows.append(row)
    return rows


def breakdown(corpus: Path, train_doc: Mapping[str, Any]) -> list[Row]:
    """Per-group rows from the ``per_brand`` part of a ``congruence train --json`` output;
    [] when the corpus has no brand kinds or the output no per-brand metrics."""
    groups = brand_groups(corpus)
    per_brand = train_doc.get("per_brand")
    if not groups or not isinstance(per_brand, dict):
        return []
    return group_rows(per_brand, groups)
