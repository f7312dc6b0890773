"""The explanation-quality corpus: influencers each posting one vertical of real photos, and
brands that match a vertical.

"Direct" brands post their target vertical themselves, "cross" brands post another one (a
pet-food brand posting kibble whose influencers post dogs). ``bench.explain_quality``
trains a head on it and plays the pointing game on composites of unseen photos.
"""

from __future__ import annotations

import csv
import random
import shutil
from pathlib import Path

from congruence.indexer.corpus import Corpus, Post
from congruence.indexer.corpus_write import write_corpus
from congruence.store.rows import Account, Match

VERTICALS = ("pets", "vehicles", "food_drink", "fashion_gear")
# a cross brand posts the key vertical and matches influencers of the value vertical
CROSS = {"food_drink": "pets", "fashion_gear": "vehicles", "pets": "food_drink", "vehicles": "fashion_gear"}


def split_photos(photos: Path) -> tuple[dict[str, list[Path]], dict[str, list[Path]]]:
    """(train, test) photo paths per vertical, from labels.csv's split column of ``photos``
    (a folder laid out as ../shared/data/photos)."""
    with open(photos / "verticals.csv") as fh:
        vertical = {r["label"]: r["vertical"] for r in csv.DictReader(fh)}
    train: dict[str, list[Path]] = {v: [] for v in VERTICALS}
    test: dict[str, list[Path]] = {v: [] for v in VERTICALS}
    with open(photos / "labels.csv") as fh:
        for r in csv.DictReader(fh):
            v = vertical[r["label"]]
            if v in train:
                (train if r["split"] == "train" else test)[v].append(photos / r["path"])
    return train, test


def cross_brand(target: str) -> str:
    """The id of the first cross brand whose influencers post ``target``."""
    posted = next(a for a, b in CROSS.items() if b == target)
    return f"cross_{posted}_to_{target}_0"


def build_corpus(
    out: Path, photos: dict[str, list[Path]], rng: random.Random, influencers: int = 10, posts: int = 4
) -> Path:
    """A corpus folder: per vertical ``influencers`` influencers, 3 direct + 3 cross brands;
    the photos (per vertical, from ``split_photos``) are copied under ``out/images``."""
    (out / "images").mkdir(parents=True)
    accounts: list[Account] = []
    rows: list[Post] = []
    matches: list[Match] = []

    def add(account: str, kind: str, vertical: str, n: int) -> None:
        accounts.append(Account(account, kind, account, vertical, 20_000))
        for j, src in enumerate(rng.sample(photos[vertical], n)):
            image = out / "images" / f"{account}_{j}.jpg"
            shutil.copy(src, image)
            rows.append(Post(f"{account}_p{j}", account, image, ""))

    for v in VERTICALS:
        for i in range(influencers):
            add(f"{v}_creator_{i}", "influencer", v, posts)
    for target in VERTICALS:
        posted_cross = next(a for a, b in CROSS.items() if b == target)
        for kind, posted in (("direct", target), ("cross", posted_cross)):
            for i in range(3):
                brand = f"{kind}_{posted}_to_{target}_{i}"
                add(brand, "brand", posted, 3)
                matches += [Match(brand, f"{target}_creator_{j}") for j in range(influencers)]
    return write_corpus(Corpus(out, accounts, rows, matches))
