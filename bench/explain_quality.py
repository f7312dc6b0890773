"""Explanation quality and speed on real photos: the pointing game, per method.

The store is ``congruence.datasets.explain_corpus``: influencers each posting one vertical,
and brands that match a vertical ("direct" brands post it themselves, "cross" brands post
another vertical: a pet-food brand posting kibble whose influencers post dogs). A head is
trained on it. Composites put an unseen photo of the brand's target vertical next to one
of another vertical; a hit is when most positive attribution mass falls on the target half
(left or right at random).

    python -m bench.explain_quality [--trials 60] [--methods gradcam,occlusion,...]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from congruence.datasets.explain_corpus import VERTICALS, build_corpus, cross_brand, split_photos
from congruence.search.attribution import HEAVY, METHODS, positive_share
from congruence.search.explain import Explainer

PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "photos"


def composite(target: Path, other: Path, target_left: bool) -> Image.Image:
    a = Image.open(target).convert("RGB").resize((224, 224))
    b = Image.open(other).convert("RGB").resize((224, 224))
    out = Image.new("RGB", (448, 224))
    out.paste(a if target_left else b, (0, 0))
    out.paste(b if target_left else a, (224, 0))
    return out


def pointing_game(
    explainer: Explainer, test_photos: dict[str, list[Path]], methods: Sequence[str], trials: int, rng: random.Random
) -> dict[str, dict[str, float]]:
    """Per method: share of composites whose target half gets most positive mass, and latency."""
    hits = dict.fromkeys(methods, 0)
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
    return {
        m: {"share": hits[m] / trials, "trials": trials, "median_s": statistics.median(seconds[m])} for m in methods
    }


def main(argv: Sequence[str] | None = None) -> int:
    from congruence.core.settings import Settings
    from congruence.indexer.ingest import ingest
    from congruence.search.engine import Engine
    from congruence.store.embedded_pg import scratch_pg
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
    with tempfile.TemporaryDirectory(prefix="congruence-explain-") as tmp, scratch_pg("congruence-explain-pg-") as pg:
        settings = Settings(home=Path(tmp) / "home", database_url=pg.fresh_database("explain"))
        build_corpus(Path(tmp) / "corpus", train_photos, rng)
        ingest(Path(tmp) / "corpus", settings)
        data = load_training_data(settings)
        deploy(settings, train(data.postsets, data.pairs, TrainConfig(epochs=60, batch_brands=4, list_size=12)).model)
        with Engine(settings) as engine:
            methods = args.methods.split(",")
            result = {}
            for group, n in (
                ([m for m in methods if m not in HEAVY], args.trials),
                ([m for m in methods if m in HEAVY], args.heavy_trials),
            ):
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
