"""Explanations: heatmaps of the congruence score, their files, cache, busy answer and quality."""

from __future__ import annotations

import fcntl
import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.explain_quality import pointing_game
from congruence.core.errors import Busy
from congruence.core.settings import Settings
from congruence.datasets.explain_corpus import build_corpus, split_photos
from congruence.indexer.ingest import ingest
from congruence.search.engine import Engine
from congruence.search.explain import Explainer
from congruence.training.deploy import deploy
from congruence.training.jobs import load_training_data
from congruence.training.loop import TrainConfig, train

from .conftest import PHOTOS, requires_photos, run


def test_cli_writes_overlay_and_raw_map_at_the_image_size(
    env: Settings, small_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "ingest", str(small_corpus), "--json")[0] == 0
    wide = tmp_path / "wide.png"
    Image.open(small_corpus / "images" / "pets_creator_00_p0.jpg").resize((300, 180)).save(wide)
    code, out, err = run(
        capsys,
        "explain",
        "--brand",
        "brand_happy_paws",
        "--image",
        str(wide),
        "--out",
        str(tmp_path / "h.png"),
        "--raw",
        str(tmp_path / "h.npy"),
        "--json",
    )
    assert code == 0, err
    raw = np.load(tmp_path / "h.npy")
    assert raw.dtype == np.float32 and raw.shape == (180, 300) and raw.max() > 0
    assert Image.open(tmp_path / "h.png").size == (300, 180)
    first = json.loads(out)["data"][0]
    assert first["cached"] is False and first["model"] == "pooled:efficientnet-lite0+minilm-l6"
    code, out, _ = run(
        capsys,
        "explain",
        "--brand",
        "brand_happy_paws",
        "--influencer",
        "pets_creator_01",
        "--top",
        "2",
        "--out-dir",
        str(tmp_path / "why"),
        "--json",
    )
    body = json.loads(out)
    assert code == 0 and body["count"] == 2
    assert all(r["post_id"].startswith("pets_creator_01_p") for r in body["data"])
    assert body["data"][0]["score"] >= body["data"][1]["score"]
    assert sorted(p.name for p in (tmp_path / "why").iterdir()) == sorted(
        ["index.json"] + [f"{r['post_id']}.{ext}" for r in body["data"] for ext in ("png", "npy")]
    )


def test_bad_input_names_the_problem(
    env: Settings, small_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "ingest", str(small_corpus), "--json")[0] == 0
    out = ["--out", str(tmp_path / "h.png")]
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not really a jpeg")
    cases = {
        ("--brand", "brand_nobody", "--post", "pets_creator_00_p0"): "unknown brand 'brand_nobody'",
        ("--brand", "brand_happy_paws", "--post", "p_nobody"): "unknown post 'p_nobody'",
        ("--brand", "pets_creator_00", "--post", "pets_creator_00_p0"): "'pets_creator_00' is an influencer",
        ("--brand", "brand_happy_paws", "--image", str(broken)): "broken.jpg",
        ("--brand", "brand_happy_paws", "--image", str(tmp_path / "nope.jpg")): "image not found",
    }
    for argv, message in cases.items():
        code, _, err = run(capsys, "explain", *argv, *out)
        assert code == 1 and message in err, (argv, err)
    code, _, err = run(capsys, "explain", "--brand", "brand_happy_paws", "--post", "pets_creator_00_p0")
    assert code == 1 and "--out FILE.png" in err


def test_post_without_image(settings: Settings, tmp_path: Path) -> None:
    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "accounts.jsonl").write_text(
        json.dumps({"id": "b", "kind": "brand", "handle": "b", "category": "x"})
        + "\n"
        + json.dumps({"id": "i", "kind": "influencer", "handle": "i", "category": "x"})
        + "\n"
    )
    (corpus / "posts.jsonl").write_text(
        json.dumps({"id": "bp", "account_id": "b", "image": None, "caption": "kibble"})
        + "\n"
        + json.dumps({"id": "ip", "account_id": "i", "image": None, "caption": "my dog"})
        + "\n"
    )
    ingest(corpus, settings)
    with Engine(settings) as engine, pytest.raises(Exception, match="post 'ip' has no image to explain"):
        Explainer(engine).explain_post("b", "ip")


def test_cache_follows_model_and_brand_and_heavy_methods_answer_busy(
    settings: Settings, small_corpus: Path, tmp_path: Path
) -> None:
    ingest(small_corpus, settings)
    with Engine(settings) as engine:
        explainer = Explainer(engine)
        first = explainer.explain_post("brand_peakfit", "fitness_creator_00_p0")[0]
        again = explainer.explain_post("brand_peakfit", "fitness_creator_00_p0")[0]
        assert not first.cached and again.cached and np.array_equal(first.heatmap, again.heatmap)
        explainer.cache_dir.mkdir(parents=True, exist_ok=True)
        with open(explainer.cache_dir / "heavy.lock", "w") as held:
            fcntl.flock(held, fcntl.LOCK_EX)
            with pytest.raises(Busy, match="another slow explanation"):
                explainer.explain_post("brand_peakfit", "fitness_creator_00_p0", method="occlusion")
            assert explainer.explain_post("brand_peakfit", "fitness_creator_00_p0")[0].cached
    # the brand posts something new: its vector changes, so the map is recomputed
    more = tmp_path / "more"
    (more / "images").mkdir(parents=True)
    shutil.copy(small_corpus / "images" / "tech_creator_00_p0.jpg", more / "images" / "new.jpg")
    (more / "posts.jsonl").write_text(
        json.dumps(
            {"id": "peak_new", "account_id": "brand_peakfit", "image": "images/new.jpg", "caption": "new gadget"}
        )
        + "\n"
    )
    ingest(more, settings)
    with Engine(settings) as engine:
        changed = Explainer(engine).explain_post("brand_peakfit", "fitness_creator_00_p0")[0]
    assert not changed.cached and changed.score != pytest.approx(first.score)
    data = load_training_data(settings)
    deploy(
        settings,
        train(data.postsets, data.pairs, TrainConfig(epochs=1, batch_brands=4, list_size=8, device="cpu")).model,
    )
    with Engine(settings) as engine:
        after = Explainer(engine).explain_post("brand_peakfit", "fitness_creator_00_p0")[0]
    assert not after.cached and after.model.startswith("head:")


# -- quality: the pointing game on real photos (bench/explain_quality.py reports it in full)
@requires_photos()
def test_pointing_game_on_composites_of_two_verticals(settings: Settings, tmp_path: Path) -> None:
    rng = random.Random(0)
    train_photos, test_photos = split_photos(PHOTOS)
    build_corpus(tmp_path / "corpus", train_photos, rng)
    ingest(tmp_path / "corpus", settings)
    data = load_training_data(settings)
    head = train(
        data.postsets, data.pairs, TrainConfig(epochs=60, batch_brands=4, list_size=12, seed=0, device="cpu")
    ).model
    deploy(settings, head)
    with Engine(settings) as engine:
        result = pointing_game(Explainer(engine), test_photos, ("gradcam",), trials=16, rng=rng)
    assert result["gradcam"]["share"] >= 0.8, result


def test_slow_methods_give_maps_at_the_image_size(settings: Settings, small_corpus: Path) -> None:
    ingest(small_corpus, settings)
    with Engine(settings) as engine:
        explainer = Explainer(engine)
        grad = explainer.explain_post("brand_wanderly", "travel_creator_00_p0")[0]
        for method in ("integrated_gradients", "occlusion"):
            exp, image = explainer.explain_post("brand_wanderly", "travel_creator_00_p0", method=method)
            assert exp.heatmap.shape == (image.height, image.width) and np.isfinite(exp.heatmap).all()
            assert np.abs(exp.heatmap).max() > 0 and exp.method == method
            assert exp.score == pytest.approx(grad.score, abs=1e-4)  # the same score, explained differently
