"""The trained congruence head in the product: train/evaluate CLI, index swap, reranking."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from congruence.core.errors import ModelMismatch
from congruence.core.settings import Settings
from congruence.encoders.inference import encode_images
from congruence.indexer.ingest import ingest
from congruence.search.engine import Engine
from congruence.search.status import status
from congruence.store.postsets import PostSets
from congruence.store.records import Store
from congruence.store.vectors import VectorStore
from congruence.training.deploy import active_spaces, deploy, head_space, publish_current
from congruence.training.jobs import load_training_data
from congruence.training.loop import TrainConfig, train
from congruence.training.model import HeadConfig

from .conftest import run

METHODS = {
    "random",
    "pooled_cosine",
    "head",
    "head_mean",
    "head_noaux",
    "head_mean_noaux",
    "shared",
    "shared_mean",
    "shared_noaux",
    "shared_mean_noaux",
}
METRIC_KEYS = {"auc", "cauc", "recall@10", "recall@50", "medr", "mrr", "n_brands"}


def trained_head(settings: Settings, epochs: int = 1, memory: bool = False):  # type: ignore[no-untyped-def]
    data = load_training_data(settings)
    config = TrainConfig(epochs=epochs, batch_brands=4, list_size=8, device="cpu", partner_memory=memory)
    return train(data.postsets, data.pairs, config).model


def one_post_corpus(folder: Path, image: Path, account: str, category: str, caption: str) -> Path:
    """A corpus of one new influencer with one post (post id np1) showing ``image``."""
    (folder / "images").mkdir(parents=True)
    shutil.copy(image, folder / "images" / "n.jpg")
    (folder / "accounts.jsonl").write_text(
        json.dumps({"id": account, "kind": "influencer", "handle": account, "category": category, "followers": 9000})
        + "\n"
    )
    (folder / "posts.jsonl").write_text(
        json.dumps({"id": "np1", "account_id": account, "image": "images/n.jpg", "caption": caption}) + "\n"
    )
    return folder


def test_train_and_evaluate_json(
    env: Settings, small_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "ingest", str(small_corpus), "--json")[0] == 0
    code, out, _ = run(capsys, "status", "--json")
    assert json.loads(out)["models"]["head"] is None and json.loads(out)["ranking"].startswith("untrained")
    brands = tmp_path / "test_brands.txt"
    brands.write_text("# held out\nbrand_peakfit\n\nbrand_wanderly\n")
    table = tmp_path / "table.md"
    code, out, err = run(
        capsys,
        "train",
        "--json",
        "--epochs",
        "2",
        "--test-brands",
        str(brands),
        "--table",
        str(table),
        "--activate-anyway",
        "--memory",
    )
    assert code == 0, err
    body = json.loads(out)
    assert set(body["results"]) == METHODS
    assert all(set(m) == METRIC_KEYS and m["n_brands"] == 2 for m in body["results"].values())
    assert body["split"]["test_brands"] == ["brand_peakfit", "brand_wanderly"]
    assert [b["brand_id"] for b in body["per_brand"]["head"]] == ["brand_peakfit", "brand_wanderly"]
    assert set(body["aux_category_accuracy"]) == {"head", "head_mean", "shared", "shared_mean"}
    # --memory with 4 training brands: a held-back quarter of 1 cannot learn its weight, so none
    assert body["model"]["partner_memory"] == {"brands": 0, "weight": 0.0}
    assert "| head_mean_noaux |" in table.read_text() and "epoch 2" in err
    version = body["model"]["version"]
    st = json.loads(run(capsys, "status", "--json")[1])
    assert st["models"]["head"] == version and st["ranking"].startswith(f"congruence head {version}")
    assert st["index"]["space"] == head_space(version) and st["index"]["dim"] == 256
    assert st["index"]["size"] == 18 and st["index"]["stale"] is False

    code, out, _ = run(capsys, "evaluate", "--json")
    ev = json.loads(out)
    assert code == 0 and ev["model"] == version and ev["test_brands"] == ["brand_peakfit", "brand_wanderly"]
    assert set(ev["results"]) == METHODS
    assert ev["results"]["head"] == body["results"]["head"]
    assert Path(ev["table"]).read_text().count("\n| ") == len(METHODS) + 1


def test_a_head_that_does_not_beat_cosine_is_not_put_in_service(
    env: Settings, small_corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The guard: the head in service stays, the CLI says why with both figures and exits 3;
    --activate-anyway overrides. (An untrained projection cannot beat cosine on the small corpus'
    direct brands, where cosine already ranks well.)"""
    assert run(capsys, "ingest", str(small_corpus), "--json")[0] == 0
    code, out, _ = run(capsys, "train", "--json", "--epochs", "1", "--variants", "product", "--activate-anyway")
    first = json.loads(out)["model"]["version"]
    assert code == 0 and json.loads(run(capsys, "status", "--json")[1])["models"]["head"] == first
    losing = ("train", "--json", "--epochs", "1", "--lr", "1e-9", "--variants", "product")
    code, out, err = run(capsys, *losing)
    body = json.loads(out)
    head, cosine = body["results"]["head"], body["results"]["pooled_cosine"]
    assert code == 3 and body["model"]["deployed"] is False and body["model"]["beats_cosine"] is False
    assert head["auc"] <= cosine["auc"]
    assert f"held-out AUC {head['auc']:.3f} vs pooled cosine {cosine['auc']:.3f}" in err
    assert f"head {body['model']['version']} was not put in service" in err and "--activate-anyway" in err
    assert json.loads(run(capsys, "status", "--json")[1])["models"]["head"] == first  # unchanged
    code, out, _ = run(capsys, *losing, "--activate-anyway")
    assert (
        code == 0
        and json.loads(run(capsys, "status", "--json")[1])["models"]["head"]
        == json.loads(out)["model"]["version"]
        != first
    )


def test_evaluate_refuses_brands_the_head_trained_on(
    env: Settings, small_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "ingest", str(small_corpus), "--json")[0] == 0
    brands = tmp_path / "b.txt"
    brands.write_text("brand_peakfit\n")
    assert (
        run(
            capsys, "train", "--epochs", "1", "--variants", "product", "--test-brands", str(brands), "--activate-anyway"
        )[0]
        == 0
    )
    brands.write_text("brand_peakfit\nbrand_circuitry\n")
    code, _, err = run(capsys, "evaluate", "--test-brands", str(brands))
    assert code == 1 and "brands in both train and test: brand_circuitry" in err
    brands.write_text("\n# nothing\n")
    code, _, err = run(capsys, "evaluate", "--test-brands", str(brands))
    assert code == 1 and f"{brands}: no brand ids" in err
    brands.write_text("brand_nobody\n")
    code, _, err = run(capsys, "train", "--test-brands", str(brands))
    assert code == 1 and err.strip() == "error: --test-brands names unknown brand ids: brand_nobody"


def test_a_two_tower_head_serves_brands_from_the_brand_tower(
    settings: Settings, small_corpus: Path, tmp_path: Path
) -> None:
    """In service, a two-tower head's index holds influencer-tower vectors; a brand (in the
    corpus, or new from uploads) queries with its brand-tower vector and posts; FAISS's top k
    is the brute-force top k of the pooled term; rerank scores are the head's own scores;
    similar compares influencers in the influencer tower."""
    ingest(small_corpus, settings)
    data = load_training_data(settings)
    head = train(
        data.postsets,
        data.pairs,
        TrainConfig(epochs=2, batch_brands=4, list_size=8, device="cpu"),
        HeadConfig(data.postsets.d_image, data.postsets.d_text, towers="two"),
    ).model
    with torch.no_grad():  # brand and influencer towers visibly apart, whatever two epochs learnt
        for w in head.brand_adapter.parameters():  # type: ignore[union-attr]
            w.add_(0.2 * torch.randn_like(w))
    deploy(settings, head)
    pooled = dict(zip(data.postsets.account_ids, head.encode_accounts(data.postsets), strict=True))
    brand_rows = [i for i, k in enumerate(data.postsets.kinds) if k == "brand"]
    as_influencers = data.postsets.subset(brand_rows)
    as_influencers = PostSets(**{**vars(as_influencers), "kinds": ["influencer"] * len(brand_rows)})
    with Engine(settings) as engine:
        snap = engine.current()
        assert snap.head is not None and snap.head.config.towers == "two"
        influencers = [
            a for a, k in zip(data.postsets.account_ids, data.postsets.kinds, strict=True) if k == "influencer"
        ]
        xb = np.stack([pooled[a] for a in influencers])
        for j, b in enumerate(
            b for b, k in zip(data.postsets.account_ids, data.postsets.kinds, strict=True) if k == "brand"
        ):
            entry = engine.entry(snap, b, "brand")
            assert np.allclose(entry.vector, pooled[b], atol=1e-5)  # the brand tower's, not the influencers'
            assert not np.allclose(entry.vector, head.encode_accounts(as_influencers)[j], atol=1e-2)
            D, I = engine.retrieve(snap, entry.vector[None], 10)  # FAISS alone (no brand posts given)
            brute = np.argsort(-(xb @ pooled[b]), kind="stable")[:10]
            assert [snap.table.ids[r] for r in snap.rows(I[0])] == [influencers[i] for i in brute]
            hits = engine.match_brand(b, k=18)
            expected = head.score_candidates(
                entry.posts, [engine.per_post_vectors(snap, [h.influencer_id])[h.influencer_id] for h in hits]
            )
            assert [h.score for h in hits] == pytest.approx(expected.tolist(), abs=1e-4)
        got = [h.influencer_id for h in engine.similar("pets_creator_00", k=5)]
        others = [a for a in influencers if a != "pets_creator_00"]
        ref = np.argsort(-(np.stack([pooled[a] for a in others]) @ pooled["pets_creator_00"]), kind="stable")[:5]
        assert got == [others[i] for i in ref]
        image = Image.open(small_corpus / "images" / "food_creator_00_p0.jpg")
        query = engine.describe_new([image], "pasta brunch")  # a new brand, from uploads
        img, txt = encode_images(engine.encoders.image, [image]), engine.encoders.text.encode(["pasta brunch"])
        with torch.no_grad():  # its posts through the brand tower too
            brand_posts = head.project(torch.from_numpy(np.concatenate([img, txt], axis=1)), True).numpy()
        assert query.posts is not None and query.space == snap.space
        assert np.allclose(query.posts, brand_posts, atol=1e-4)


def test_rerank_orders_candidates_as_the_head_scores_them(settings: Settings, small_corpus: Path) -> None:
    ingest(small_corpus, settings)
    head = trained_head(settings)
    with torch.no_grad():
        # make the set-to-set term the whole score, reversed: the head now prefers the
        # influencers whose posts are least like the brand's, unlike cosine retrieval
        head.mix.copy_(torch.tensor([0.0, -5.0]))
    deploy(settings, head)
    with Engine(settings) as engine:
        hits = engine.match_brand("brand_peakfit", k=18)
        ids = [h.influencer_id for h in hits]
        with engine.reading() as store:
            stored = VectorStore(store).post_vectors(engine.snapshot.space, ids=ids + ["brand_peakfit"])
        served = engine.per_post_vectors(engine.snapshot, ids)  # the int8 copy beside the index
    brand = stored["brand_peakfit"]
    expected = head.score_candidates(brand, [served[i] for i in ids])
    assert [h.score for h in hits] == pytest.approx(sorted(expected.tolist(), reverse=True), abs=1e-5)
    assert ids == [ids[int(i)] for i in np.argsort(-expected, kind="stable")]
    # the in-memory int8 copy scores as the float16 system of record does, to ~1e-3
    exact = head.score_candidates(brand, [stored[i] for i in ids])
    assert np.abs(expected - exact).max() < 5e-3 * np.abs(exact).max()
    for i in ids:
        assert np.abs(served[i] - stored[i]).max() <= np.abs(stored[i]).max(axis=1).max() / 254 + 1e-6
    # the reversed head pushes the brand's own category to the bottom
    assert hits[0].category != "fitness" and hits[-1].category == "fitness"


def test_a_head_with_a_partner_memory_serves_its_scores(settings: Settings, small_corpus: Path) -> None:
    """The memory is a term of the head's score: a served match's scores are the head's own,
    memory term included (here weighted up so that it moves the ranking), from the checkpoint
    the engine loads."""
    ingest(small_corpus, settings)
    head = trained_head(settings, memory=True)
    assert head.memory_brands >= 4
    with torch.no_grad():
        head.mem_weight.fill_(20.0)
    deploy(settings, head)
    with Engine(settings) as engine:
        assert engine.snapshot.head is not None and float(engine.snapshot.head.mem_weight) == 20.0
        hits = engine.match_brand("brand_peakfit", k=18)
        ids = [h.influencer_id for h in hits]
        served = engine.per_post_vectors(engine.snapshot, ids)
        with engine.reading() as store:
            brand = VectorStore(store).post_vectors(engine.snapshot.space, ids=["brand_peakfit"])["brand_peakfit"]
    expected = head.score_candidates(brand, [served[i] for i in ids])
    assert [h.score for h in hits] == pytest.approx(sorted(expected.tolist(), reverse=True), abs=1e-4)
    with torch.no_grad():
        head.mem_weight.zero_()
    without = head.score_candidates(brand, [served[i] for i in ids])
    assert np.abs(expected - without).max() > 0.1  # the memory moved the scores


def test_retraining_swaps_the_index_without_downtime(settings: Settings, small_corpus: Path) -> None:
    ingest(small_corpus, settings)
    first = trained_head(settings)
    deploy(settings, first)
    with Engine(settings) as serving:
        before = serving.match_brand("brand_happy_paws", k=5)
        second, third = trained_head(settings, epochs=2), trained_head(settings, epochs=3)
        deploy(settings, second)
        # the running engine answers its next query with the new head: the deploy bumped
        # the store's generation, so the engine swaps in a new snapshot before answering
        after = serving.match_brand("brand_happy_paws", k=5)
        assert after != before and len(after) == 5
        assert serving.snapshot.head is not None and serving.snapshot.head.version == second.version
        assert status(serving).index.space == head_space(second.version)
        deploy(settings, third)
    with Store.open(settings) as store:
        spaces = VectorStore(store).spaces()
    # the previous head is kept for rollback, older ones are removed with their index
    assert spaces == sorted(["pooled", head_space(second.version), head_space(third.version)])
    assert not (settings.index_dir / head_space(first.version).replace(":", "_")).exists()


def test_ingest_keeps_the_head_space_current(
    env: Settings, small_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "ingest", str(small_corpus), "--json")[0] == 0
    assert run(capsys, "train", "--epochs", "1", "--variants", "product", "--activate-anyway")[0] == 0
    more = one_post_corpus(
        tmp_path / "more",
        small_corpus / "images" / "fitness_creator_00_p0.jpg",
        "newbie",
        "fitness",
        "gym and marathon training",
    )
    code, out, _ = run(capsys, "ingest", str(more), "--json")
    report = json.loads(out)
    head_index = [v for k, v in report["index"].items() if k.startswith("head:")]
    assert code == 0 and head_index and head_index[0]["size"] == 19 and head_index[0]["added"] == 1
    body = json.loads(run(capsys, "match", "--brand", "brand_peakfit", "-k", "19", "--json")[1])
    assert "newbie" in {h["influencer_id"] for h in body["data"]}
    st = json.loads(run(capsys, "status", "--json")[1])
    assert st["index"]["size"] == 19 and st["index"]["stale"] is False


def test_engine_catches_up_accounts_ingested_without_the_head(settings: Settings, small_corpus: Path) -> None:
    ingest(small_corpus, settings)
    deploy(settings, trained_head(settings))
    with Store.open(settings) as store:
        store.conn.execute("DELETE FROM account_vectors WHERE account_id = 'travel_creator_01' AND space LIKE 'head:%'")
    with Engine(settings) as engine:
        assert status(engine).index.size == 18
        assert "travel_creator_01" in {h.influencer_id for h in engine.match_brand("brand_wanderly", k=18)}


def test_match_new_brand_and_top_posts_use_the_head(settings: Settings, small_corpus: Path) -> None:
    from PIL import Image

    ingest(small_corpus, settings)
    deploy(settings, trained_head(settings, epochs=3))
    img = Image.open(small_corpus / "images" / "pets_creator_00_p0.jpg").convert("RGB")
    with Engine(settings) as engine:
        hits = engine.match_new([img], "puppy and kitten food", k=3, posts=1)
        assert [h.rank for h in hits] == [1, 2, 3] and hits[0].score >= hits[1].score >= hits[2].score
        assert all(len(h.top_posts) == 1 and h.top_posts[0].post_id.startswith(h.influencer_id) for h in hits)
        text_only = engine.match_new([], "puppy and kitten food", k=3)
        assert len(text_only) == 3


def test_deploy_refuses_a_head_trained_on_other_encoders(settings: Settings, small_corpus: Path) -> None:
    ingest(small_corpus, settings)
    head = trained_head(settings)
    head.meta["image_encoder"] = "open_clip:ViT-B-32@laion2b"
    with pytest.raises(ModelMismatch, match="trained on 'open_clip:ViT-B-32@laion2b' \\+ 'minilm-l6'"):
        deploy(settings, head)
    with Store.open(settings) as store:
        assert VectorStore(store).spaces() == ["pooled"] and "head_version" not in store.meta()


def test_compressed_index_with_in_memory_posts_answers_as_the_exact_one(
    settings: Settings, small_corpus: Path, tmp_path: Path
) -> None:
    """Past both thresholds the head's space is HNSW with 8-bit codes and the per-post vectors
    in memory: with every influencer a candidate, it ranks exactly as the flat float32 index
    does, and an ingest afterwards adds the new account (and its posts) incrementally."""
    ingest(small_corpus, settings)
    deploy(settings, trained_head(settings, epochs=2))
    brands = ["brand_peakfit", "brand_wanderly", "brand_happy_paws"]
    with Engine(settings) as engine:
        assert (engine.snapshot.index.kind, engine.snapshot.index.codec) == ("flat", "float32")
        exact = {b: engine.match_brand(b, k=10, posts=1) for b in brands}
        similar = engine.similar("pets_creator_00", k=6)
    small = settings.with_(exact_threshold=5, compress_threshold=10)
    publish_current(small)  # the writers' layout: past both thresholds
    with Engine(small) as engine:
        index = engine.snapshot.index
        assert (index.kind, index.codec) == ("hnsw", "sq8") and index.posts is not None
        assert int((index.posts.count > 0).sum()) == 18
        for b in brands:
            hits = engine.match_brand(b, k=10, posts=1)
            assert [h.influencer_id for h in hits] == [h.influencer_id for h in exact[b]]
            assert [h.score for h in hits] == pytest.approx([h.score for h in exact[b]], abs=1e-6)
            assert [h.top_posts for h in hits] == [h.top_posts for h in exact[b]]
        # no rerank here: the 8-bit codes' candidates are re-scored with the float32 vectors
        got = engine.similar("pets_creator_00", k=6)
        assert [h.influencer_id for h in got] == [h.influencer_id for h in similar]
        assert [h.score for h in got] == pytest.approx([h.score for h in similar], abs=1e-6)
        more = one_post_corpus(
            tmp_path / "more", small_corpus / "images" / "pets_creator_00_p0.jpg", "newpet", "pets", "puppy treats"
        )
        report = ingest(more, small, spaces=active_spaces(small))
        assert report.derived_indexes[engine.snapshot.space].added == 1
        hits = engine.match_brand("brand_happy_paws", k=19, posts=1)  # the engine reloads: generation moved
        new = next(h for h in hits if h.influencer_id == "newpet")
        assert engine.snapshot.index.codec == "sq8" and new.top_posts[0].post_id == "np1" and np.isfinite(new.score)
