"""The engagement model end to end on the real store and real encoders: train, serve, CLI, analysis."""

from __future__ import annotations

import argparse
import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from congruence.cli.engagement import add_parsers
from congruence.core.errors import InvalidInput, NotFound
from congruence.core.settings import Settings
from congruence.datasets.demo import caption
from congruence.encoders.encoder_set import EncoderSet
from congruence.engagement.checkpoint import ACTIVE_KEY, checkpoint_path, load_model
from congruence.engagement.data import load_engagement_data
from congruence.engagement.evidence import Effect
from congruence.engagement.model import EngagementConfig
from congruence.engagement.service import ImageScore, Scorer, suggestion_text
from congruence.engagement.suggest import Suggestion
from congruence.engagement.train import train_engagement
from congruence.indexer.ingest import ingest
from congruence.store.records import Store

SMOKE = EngagementConfig(epochs=3, val_fraction=0.2, batch_accounts=4)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="congruence")
    add_parsers(parser.add_subparsers(dest="command", required=True))
    return parser


def _cli(capsys: pytest.CaptureFixture[str], settings: Settings, *argv: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    args = _parser().parse_args(list(argv))
    code = args.func(args, settings)
    return code, json.loads(capsys.readouterr().out)


def test_scorer_without_a_model_says_what_to_run(settings: Settings) -> None:
    with Store.open(settings) as store, pytest.raises(NotFound) as e:
        Scorer.load(settings, store)
    assert str(e.value) == "no engagement model yet: run `congruence engagement train`"


def test_data_labels_and_features_from_the_store(settings: Settings, small_corpus: Path) -> None:
    ingest(small_corpus, settings)
    with Store.open(settings) as store:
        data = load_engagement_data(store, EncoderSet(settings))
    assert len(data.account_ids) == 18 and len(data) == 36  # influencers only, 2 posts each
    f = data.features
    assert f.image_mask.all() and f.text_mask.all() and not f.alt_mask.any()
    np.testing.assert_allclose(np.linalg.norm(f.image, axis=1), 1.0, atol=1e-5)
    assert np.isfinite(f.log_followers).all()
    # two posts an account: z is +-0.6745 (or 0 on equal likes), the more-liked one positive
    for g in range(18):
        rows = np.flatnonzero(data.groups == g)
        a, b = rows
        assert data.z[a] == pytest.approx(-data.z[b])
        if data.likes[a] != data.likes[b]:
            assert abs(data.z[a]) == pytest.approx(1 / 1.4826, rel=1e-4)
            assert (data.z[a] > data.z[b]) == (data.likes[a] > data.likes[b])


def test_train_serve_and_cli(settings: Settings, small_corpus: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ingest(small_corpus, settings)
    # --activate-anyway: three epochs on 12 accounts may or may not beat a constant score on the
    # 5 held-out pairs; what is refused and when is test_a_model_that_cannot_be_tested_...
    code, body = _cli(
        capsys,
        settings,
        "engagement",
        "train",
        "--json",
        "--epochs",
        "3",
        "--test-fraction",
        "0.34",
        "--activate-anyway",
    )
    assert code == 0
    res = body["results"]
    assert res["constant"] == res["followers"] == {"pairwise_accuracy": 0.5, "pairs": res["model"]["pairs"]}
    assert 0.0 <= res["model"]["pairwise_accuracy"] <= 1.0 and res["model"]["pairs"] > 0
    assert body["split"]["test_accounts"] == 6 and body["split"]["train_accounts"] == 12
    assert body["trained_with"]["image"] == body["split"]["train_posts"] == 24
    # three MLPs of three epochs each, then the linear model (no epochs)
    assert body["model"]["activated"] and [(e["member"], e["epoch"]) for e in body["epochs"]] == [
        (m, e) for m in range(3) for e in range(3)
    ]
    version = body["model"]["version"]
    assert checkpoint_path(settings, version).is_file()
    with Store.open(settings) as store:
        assert store.meta()[ACTIVE_KEY] == version
        scorer = Scorer.load(settings, store)
    tested = {c["name"] for c in body["evidence"]["tested"]}
    assert tested == {e.name for e in scorer.model.suggestions.evidence.effects} and len(tested) <= 20
    qualified = {e.name for e in scorer.model.suggestions.qualified}
    assert body["basis"] == {
        "corpus": small_corpus.name,
        "accounts": 12,
        "posts": 24,
        "held_out_accounts": 6,
        "held_out_posts": 12,
    }

    imgs = sorted((small_corpus / "images").glob("*_creator_0*_p0.jpg"))[:3]
    pics = [Image.open(p).convert("RGB") for p in imgs]
    scores = scorer.score(pics, ["morning run", None, ""])
    assert [s.index for s in scores] == [0, 1, 2]
    assert all(isinstance(s, ImageScore) and 0.0 <= s.score <= 10.0 for s in scores)
    assert sorted(s.rank for s in scores) == [1, 2, 3]
    best_first = sorted(scores, key=lambda s: s.rank)
    assert [s.score for s in best_first] == sorted((s.score for s in scores), reverse=True)
    assert all({g.effect.name for g in s.suggestions} <= qualified and len(s.suggestions) <= 3 for s in scores)
    assert all(bool(s.suggestions) != bool(s.suggestion_note) for s in scores)  # a suggestion, or why not
    assert scorer.score(pics, ["morning run", None, ""]) == scores  # deterministic, encoders loaded once
    assert scores[0].to_dict() == {
        "index": 0,
        "score": scores[0].score,
        "rank": scores[0].rank,
        "suggestions": [g.to_dict() for g in scores[0].suggestions],
        "suggestion_note": scores[0].suggestion_note,
    }
    with pytest.raises(InvalidInput, match="expected 3 captions \\(one per image\\), got 1"):
        scorer.score(pics, ["x"])

    # the saved model predicts exactly what the trained one did
    again = load_model(checkpoint_path(settings, version))
    assert again.version == version
    assert again.suggestions.evidence.to_dict() == scorer.model.suggestions.evidence.to_dict()
    assert again.net.n_members == 3 and again.net.linear is not None
    with Store.open(settings) as store:
        feats = load_engagement_data(store, EncoderSet(settings)).features
    np.testing.assert_array_equal(again.net.predict(feats), scorer.model.net.predict(feats))
    assert np.ptp(again.net.linear.predict(feats)) > 0  # the linear half takes part

    code, out = _cli(capsys, settings, "score", str(imgs[0]), str(imgs[1]), "--caption", "gym day", "--json")
    assert code == 0 and out["count"] == 2 and out["model"] == version and out["basis"] == scorer.basis.to_dict()
    assert [d["index"] for d in out["data"]] == [0, 1] and sorted(d["rank"] for d in out["data"]) == [1, 2]
    assert out["ranking"][0] == out["data"][[d["rank"] for d in out["data"]].index(1)]["image"]


def test_held_out_accounts_from_a_file(settings: Settings, small_corpus: Path, tmp_path: Path) -> None:
    ingest(small_corpus, settings)
    held = tmp_path / "held.txt"
    held.write_text("# held out\nfood_creator_00\ntech_creator_01\n\nnot_an_account\n")
    from congruence.engagement.train import read_account_file

    with pytest.raises(InvalidInput, match="^test_accounts names unknown account ids: not_an_account$"):
        train_engagement(settings, SMOKE, read_account_file(held), activate=False)  # a typo is named
    held.write_text("# held out\nfood_creator_00\ntech_creator_01\n")
    report = train_engagement(settings, SMOKE, read_account_file(held), activate=False)
    assert report.n_test_accounts == 2 and report.n_train_accounts == 16 and not report.activated
    with Store.open(settings) as store:
        assert ACTIVE_KEY not in store.meta()
    held.write_text("nobody\n")
    with pytest.raises(InvalidInput, match="unknown account ids: nobody"):
        train_engagement(settings, SMOKE, read_account_file(held))


def test_demo_likes_follow_brightness() -> None:
    from congruence.datasets.demo import likes

    dark, light = Image.new("RGB", (8, 8), (20, 20, 20)), Image.new("RGB", (8, 8), (230, 230, 230))
    grey = Image.new("RGB", (8, 8), (128, 128, 128))
    assert likes(light, 2525, 100_000) > 100 * likes(dark, 2525, 100_000)
    assert likes(dark, 50, 100_000) < likes(dark, 5000, 100_000) < 1.25 * likes(dark, 50, 100_000)
    assert likes(grey, 2525, 10_000) == pytest.approx(200, rel=0.02)  # 2 % of the followers at mid brightness
    assert likes(grey, 2525, 50_000) == pytest.approx(5 * likes(grey, 2525, 10_000), rel=0.01)


def test_suggestion_text() -> None:
    sea = Suggestion(Effect("seashore", "image", 0.6, 0.3, 0.9, 410, 190, 0.5, 1600, 700), "a reason")
    light = Suggestion(Effect("brightness", "property", 0.4, 0.1, 0.7, 90, 30, 0.5, 300, 100), "darker")
    assert suggestion_text(ImageScore(0, 5.0, 1, (sea, light))) == (
        "including *seashore, a brighter picture* may help: posts showing seashore score +0.60 (+0.30 to +0.90) on the "
        "account's scale; 410 posts, 190 accounts held out from training (a reason); brighter pictures score "
        "+0.40 (+0.10 to +0.70) on the account's scale; 90 posts, 30 accounts held out from training (darker)"
    )
    assert suggestion_text(ImageScore(0, 5.0, 1, (), "No suggestion: why.")) == "No suggestion: why."


def _tagged_corpus(root: Path) -> Path:
    """Text-only: 2 brands, 12 influencers; a post tagging the influencer's own kind of brand
    gets about three times the likes of one tagging the other brand."""
    rng = random.Random(3)
    root.mkdir(parents=True)
    accounts: list[dict[str, object]] = []
    posts: list[dict[str, object]] = []
    for cat in ("fitness", "food"):
        accounts.append({"id": f"brand_{cat}", "kind": "brand", "handle": cat, "category": cat, "followers": 90_000})
        posts += [
            {
                "id": f"brand_{cat}_{n}",
                "account_id": f"brand_{cat}",
                "image": None,
                "caption": caption(cat, rng),
                "likes": 500,
            }
            for n in range(3)
        ]
    for cat, other in (("fitness", "food"), ("food", "fitness")):
        for i in range(6):
            acc = f"{cat}_{i}"
            accounts.append(
                {
                    "id": acc,
                    "kind": "influencer",
                    "handle": acc,
                    "category": cat,
                    "followers": rng.randint(5_000, 90_000),
                }
            )
            for n in range(4):
                own = n < 2
                posts.append(
                    {
                        "id": f"{acc}_{n}",
                        "account_id": acc,
                        "image": None,
                        "caption": caption(cat, rng),
                        "likes": (900 if own else 300) + rng.randint(0, 100),
                        "ts": 1_700_000_000 + n,
                        "tagged": [f"brand_{cat if own else other}"],
                    }
                )
    for name, rows in (("accounts", accounts), ("posts", posts)):
        (root / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def test_analyze_engagement_finds_a_planted_congruence_effect(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ingest(_tagged_corpus(tmp_path / "tagged"), settings)
    code, body = _cli(capsys, settings, "analyze", "engagement", "--json")
    assert code == 0 and body["n"] == 48 and body["n_accounts"] == 12 and body["space"] == "pooled"
    assert body["coefficient"] > 0 and body["ci95"][0] > 0 and body["p_value"] < 0.05
    assert body["tagged_kinds"] == {"brand": 48, "influencer": 0} and body["brands"] == "tagged brand accounts"
    assert body["reading"].startswith("Posts tagging a brand that is more congruent with the influencer get more")


def test_analyze_engagement_without_tagged_posts(settings: Settings, small_corpus: Path) -> None:
    ingest(small_corpus, settings)
    from congruence.engagement.effect import analyze_engagement

    with pytest.raises(
        InvalidInput,
        match=r"^only 0 posts can enter the regression .* \(space 'pooled'\).*; "
        r"0 of the 36 influencer posts with likes tag any account at all$",
    ):
        analyze_engagement(settings)


def _equal_likes(corpus: Path, tmp_path: Path, accounts: set[str]) -> Path:
    """A copy of ``corpus`` where every post of ``accounts`` has the same likes: held out,
    they give no pair to test a model on."""
    out = tmp_path / "equal-likes"
    shutil.copytree(corpus, out)
    lines = [json.loads(x) for x in (out / "posts.jsonl").read_text().splitlines() if x.strip()]
    for post in lines:
        if post["account_id"] in accounts:
            post["likes"] = 100
    (out / "posts.jsonl").write_text("".join(json.dumps(p) + "\n" for p in lines))
    return out


def test_a_model_that_cannot_be_tested_is_not_put_in_service(
    settings: Settings, small_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    held = {"food_creator_00", "tech_creator_01"}
    ingest(_equal_likes(small_corpus, tmp_path, held), settings)
    (tmp_path / "held.txt").write_text("\n".join(sorted(held)) + "\n")
    argv = ("engagement", "train", "--json", "--epochs", "2", "--test-accounts", str(tmp_path / "held.txt"))
    parser = _parser()

    def train(*extra: str) -> tuple[int, dict, str]:  # type: ignore[type-arg]
        args = parser.parse_args([*argv, *extra])
        code = args.func(args, settings)
        out, err = capsys.readouterr()
        return code, json.loads(out)["model"], err

    code, refused, err = train()
    assert code == 3 and refused["activated"] is False and refused["beats_baseline"] is False
    assert refused["verdict"] == "no held-out pair of posts with different likes to test it on"
    assert refused["in_service"] is None and checkpoint_path(settings, refused["version"]).is_file()
    assert err.strip() == (
        f"error: engagement model {refused['version']} was not put in service: it cannot be "
        "tested: no held-out pair of posts with different likes to test it on; no model is in "
        "service. Pass --activate-anyway to use it regardless."
    )
    code, forced, _ = train("--activate-anyway", "--seed", "1")
    assert code == 0 and forced["activated"] and forced["in_service"] == forced["version"] != refused["version"]
    code, again, err = train("--seed", "2")  # another model, refused: the one in service stays
    assert code == 3 and again["version"] not in (forced["version"], refused["version"])
    assert again["in_service"] == forced["version"] and f"the model in service ({forced['version']}) stays" in err
    with Store.open(settings) as store:
        assert store.meta()[ACTIVE_KEY] == forced["version"]
    code, kept, _ = train("--no-activate", "--seed", "3")
    assert code == 0 and not kept["activated"] and kept["in_service"] == forced["version"]
    with pytest.raises(SystemExit):  # one or the other
        parser.parse_args([*argv, "--no-activate", "--activate-anyway"])


def test_the_verdict_wants_held_out_pairs_and_to_beat_every_baseline() -> None:
    from congruence.engagement.train import Accuracy, Verdict

    def verdict(model: float, pairs: int, followers: float = 0.5) -> Verdict:
        return Verdict.of(
            {"constant": Accuracy(0.5, pairs), "followers": Accuracy(followers, pairs), "model": Accuracy(model, pairs)}
        )

    assert verdict(0.51, 40).beats and not verdict(0.5, 40).beats and not verdict(0.49, 40).beats
    assert not verdict(0.55, 40, followers=0.6).beats and verdict(0.55, 40, followers=0.6).baseline == 0.6
    none = Verdict.of({"constant": Accuracy(float("nan"), 0), "model": Accuracy(float("nan"), 0)})
    assert not none.beats and str(none) == "no held-out pair of posts with different likes to test it on"
    assert none.refusal().startswith("it cannot be tested: ")
    assert verdict(0.49, 40).refusal() == (
        "it does not beat the baselines on the held-out accounts (held-out "
        "pairwise accuracy 0.4900 vs 0.5000 for the best baseline (40 pairs))"
    )
