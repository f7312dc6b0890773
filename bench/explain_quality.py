"""Explanation quality and speed on real photos: the pointing game, per method.

A small store of influencers each posting one vertical, and brands that match a vertical:
"direct" brands post it themselves, "cross" brands post another vertical (a pet-food brand
posting kibble whose influencers post dogs). A head is trained on it. Composites put an
unseen photo of the brand's target vertical next to one of another vertical; a hit is
when most positive attribution mass falls on the target half (left or right at random).

    python -m bench.explain_quality [--trials 60] [--methods gradcam,occlusion,...]
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from congruence.search.attribution import HEAVY, METHODS, positive_share
from congruence.search.explain import Explainer

VERTICALS = ("pets", "vehicles", "food_drink", "fashion_gear")
# a cross brand posts the key vertical and matches influencers of the value vertical
CROSS = {"food_drink": "pets", "fashion_gear": "vehicles", "pets": "food_drink", "vehicles": "fashion_gear"}
PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "photos"


def split_photos(photos: Path) -> tuple[dict[str, list[Path]], dict[str, list[Path]]]:
    """(train, test) photo paths per vertical, from labels.csv's split column."""
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
    posted = next(a for a, b in CROSS.items() if b == target)
    return f"cross_{posted}_to_{target}_0"


def build_corpus(out: Path, photos: dict[str, list[Path]], rng: random.Random,
                 influencers: int = 10, posts: int = 4) -> None:
    """A corpus folder: per vertical ``influencers`` influencers, 3 direct + 3 cross brands."""
    (out / "images").mkdir(parents=True)
    accounts, rows, matches = [], [], []

    def add(account: str, kind: str, vertical: str, n: int) -> None:
        accounts.append({"id": account, "kind": kind, "handle": account, "category": vertical, "followers": 20_000})
        for j, src in enumerate(rng.sample(photos[vertical], n)):
            name = f"{account}_{j}.jpg"
            shutil.copy(src, out / "images" / name)
            rows.append({"id": f"{account}_p{j}", "account_id": account, "image": f"images/{name}", "caption": ""})

    for v in VERTICALS:
        for i in range(influencers):
            add(f"{v}_creator_{i}", "influencer", v, posts)
    for target in VERTICALS:
        posted_cross = next(a for a, b in CROSS.items() if b == target)
        for kind, posted in (("direct", target), ("cross", posted_cross)):
            for i in range(3):
                brand = f"{kind}_{posted}_to_{target}_{i}"
                add(brand, "brand", posted, 3)
                matches += [{"brand_id": brand, "influencer_id": f"{target}_creator_{j}"} for j in range(influencers)]
    for name, data in (("accounts", accounts), ("posts", rows), ("matches", matches)):
        (out / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in data))


def composite(target: Path, other: Path, target_left: bool) -> Image.Image:
    a = Image.open(target).convert("RGB").resize((224, 224))
    b = Image.open(other).convert("RGB").resize((224, 224))
    out = Image.new("RGB", (448, 224))
    out.paste(a if target_left else b, (0, 0))
    out.paste(b if target_left else a, (224, 0))
    return out


def pointing_game(explainer: Explainer, test_photos: dict[str, list[Path]], methods: Sequence[str],
                  trials: int, rng: random.Random) -> dict[str, dict[str, float]]:
    """Per method: share of composites whose target half gets most positive mass, and latency."""
    hits = {m: 0 for m in methods}
    seconds: dict[str, list[float]] = {m: [] for m in methods}
    for k in range(trials):
        target_v, other_v = rng.sample(VERTICALS, 2)
        left = rng.random() < 0.5
        img = composite(rng.choice(test_photos[target_v]), rng.choice(test_photos[other_v]), left)
        for m in methods:
            t = time.perf_counter()
            heat = explainer.explain_image(cross_brand(target_v), img, f"composite-{k}", method=m).heatmap
            seconds[m].append(time.perf_counter() - t)
            half = np.zeros(heat.shape, bool)
            half[:, : heat.shape[1] // 2] = True
            hits[m] += positive_share(heat, half if left else ~half) > 0.5
    return {m: {"share": hits[m] / trials, "trials": trials, "median_s": statistics.median(seconds[m])}
            for m in methods}


def main(argv: Sequence[str] | None = None) -> int:
    from bench.pg import embedded_pg
    from congruence.core.settings import Settings
    from congruence.indexer.ingest import ingest
    from congruence.search.engine import Engine
    from congruence.training.deploy import deploy
    from congruence.training.jobs import load_training_data
    from congruence.training.loop import TrainConfig, train

    p = argparse.ArgumentParser(prog="python -m bench.explain_quality", description=__doc__)
    p.add_argument("--trials", type=int, default=60, help="composites for gradcam")
    p.add_argument("--heavy-trials", type=int, default=12, help="composites for the slow methods (the first ones)")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "explain.json")
    args = p.parse_args(argv)
    if not (PHOTOS / "labels.csv").exists():
        raise SystemExit(f"real photos not found at {PHOTOS}")
    rng = random.Random(0)
    train_photos, test_photos = split_photos(PHOTOS)
    with tempfile.TemporaryDirectory(prefix="congruence-explain-") as tmp, embedded_pg(Path(tmp)) as pg:
        Path(tmp).chmod(0o755)  # as root the server runs as its own user
        settings = Settings(home=Path(tmp) / "home", database_url=pg.fresh_database("explain"))
        build_corpus(Path(tmp) / "corpus", train_photos, rng)
        ingest(Path(tmp) / "corpus", settings)
        data = load_training_data(settings)
        deploy(settings, train(data.postsets, data.pairs, TrainConfig(epochs=60, batch_brands=4, list_size=12)).model)
        with Engine(settings) as engine:
            methods = args.methods.split(",")
            result = {}
            for group, n in (([m for m in methods if m not in HEAVY], args.trials),
                             ([m for m in methods if m in HEAVY], args.heavy_trials)):
                # the same seed: the slow methods see the first of the same composites
                result.update(pointing_game(Explainer(engine), test_photos, group, n, random.Random(1)))
    print(f"{'method':<22} {'pointing':>8} {'median s':>9}")
    for m, r in result.items():
        print(f"{m:<22} {r['share']:>8.3f} {r['median_s']:>9.3f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
