"""Real photographs (../shared/data/photos): same-vertical matches with untrained embeddings."""

from __future__ import annotations

import csv
import json
import random
import shutil
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from congruence.core.settings import Settings
from congruence.indexer.index import VectorIndex
from congruence.indexer.ingest import ingest
from congruence.search.engine import Engine
from congruence.store.vectors import VectorStore
from tests.conftest import PHOTOS, requires_photos

pytestmark = [requires_photos(), pytest.mark.slow]


def build_vertical_corpus(out: Path, per_vertical: int = 12, posts: int = 4, seed: int = 3) -> dict[str, str]:
    """Brands (test-split photos) and influencers (train-split photos, one off-topic post each)."""
    rng = random.Random(seed)
    vertical = {r["label"]: r["vertical"] for r in csv.DictReader((PHOTOS / "verticals.csv").open())}
    photos: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
    for r in csv.DictReader((PHOTOS / "labels.csv").open()):
        photos[(vertical[r["label"]], r["split"])].append((r["path"], r["label"]))
    (out / "img").mkdir(parents=True)
    accounts, rows, truth = [], [], {}

    def post(acc: str, n: int, path_label: tuple[str, str]) -> None:
        path, label = path_label
        name = f"{acc}_{n}.jpg"
        shutil.copy(PHOTOS / path, out / "img" / name)
        rows.append(
            {
                "id": f"{acc}_{n}",
                "account_id": acc,
                "image": f"img/{name}",
                "caption": f"my {label.replace('_', ' ')} today",
            }
        )

    verticals = sorted({v for v, _ in photos})
    for v in verticals:
        b = f"brand_{v}"
        accounts.append({"id": b, "kind": "brand", "handle": b, "category": v})
        truth[b] = v
        for n, pl in enumerate(rng.sample(photos[(v, "test")], posts)):
            post(b, n, pl)
        for i in range(per_vertical):
            acc = f"{v}_{i}"
            accounts.append(
                {
                    "id": acc,
                    "kind": "influencer",
                    "handle": acc,
                    "category": v,
                    "followers": rng.randint(5_000, 100_000),
                }
            )
            for n, pl in enumerate(rng.sample(photos[(v, "train")], posts - 1)):
                post(acc, n, pl)
            other = rng.choice([w for w in verticals if w != v])
            post(acc, posts, rng.choice(photos[(other, "train")]))
    for name, data in (("accounts", accounts), ("posts", rows)):
        (out / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in data))
    return truth


def test_untrained_match_finds_same_vertical_influencers(settings: Settings, tmp_path: Path) -> None:
    truth = build_vertical_corpus(tmp_path / "corpus")
    assert ingest(tmp_path / "corpus", settings).exit_code == 0
    precisions = []
    with Engine(settings) as engine:
        for brand, v in truth.items():
            hits = engine.match_brand(brand, k=10)
            precisions.append(np.mean([h.category == v for h in hits]))
        # HNSW on these real embeddings (posts as the database) keeps recall@10 >= 0.95
        ids = engine.ids
        with engine.reading() as store:
            sets = VectorStore(store).post_sets(ids.image, ids.text, ids.d_image, ids.d_text)
    p10 = float(np.mean(precisions))
    print(f"precision@10 over {len(truth)} brands: {p10:.3f}")
    assert p10 >= 0.8
    xb = sets.features[:, : ids.d_image].copy()
    flat, hnsw = VectorIndex(ids.d_image, "flat"), VectorIndex(ids.d_image, "hnsw")
    seqs = np.arange(len(xb))
    for index in (flat, hnsw):
        index.add(seqs, seqs, xb)
    _, exact = flat.search(xb[:100], 10)
    _, approx = hnsw.search(xb[:100], 10)
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact, strict=True)])
    assert recall >= 0.95
