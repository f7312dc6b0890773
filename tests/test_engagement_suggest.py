"""Suggestions end to end on real photos, the real store and encoders: train, save, load, score.

Railway photos (``../shared/data/photos``: steam, electric locomotives and bullet trains)
posted by 40 accounts. With planted likes, posts whose photo shows a streetcar (one of its
five strongest ImageNet concepts) get three times the account's usual: the streetcar must be
suggested, with an interval above zero, for a photo that shows what streetcars come with. With
likes that follow nothing, nothing may be suggested and the page's sentence says so.
"""

from __future__ import annotations

import csv
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from congruence.core.settings import Settings
from congruence.encoders.encoder_set import EncoderSet
from congruence.encoders.inference import encode_images
from congruence.engagement.concepts import concept_bank
from congruence.engagement.model import EngagementConfig
from congruence.engagement.service import Scorer, suggestion_text
from congruence.engagement.suggest import NOTHING_QUALIFIES
from congruence.engagement.train import train_engagement
from congruence.indexer.corpus import Corpus, Post
from congruence.indexer.corpus_write import write_corpus
from congruence.indexer.ingest import ingest
from congruence.store.records import Store
from congruence.store.rows import Account
from tests.conftest import PHOTOS, requires_photos

pytestmark = requires_photos()
CLASSES = ("steam_locomotive", "electric_locomotive", "bullet_train")
PLANTED = "streetcar"
FAST = EngagementConfig(epochs=2, members=1, batch_accounts=8, val_fraction=0.0)


@pytest.fixture(scope="module")
def railway(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The photos copied into a corpus folder and the concepts each one shows."""
    root = tmp_path_factory.mktemp("railway")
    (root / "images").mkdir()
    with (PHOTOS / "labels.csv").open(encoding="utf-8") as f:
        paths = sorted(r["path"] for r in csv.DictReader(f) if r["label"] in CLASSES)
    files = [Path(shutil.copy(PHOTOS / p, root / "images" / Path(p).name)) for p in paths]
    bank = concept_bank("efficientnet-lite0")
    assert bank is not None
    enc = EncoderSet(Settings(home=root / "unused")).image
    shown = bank.shown(encode_images(enc, [Image.open(p).convert("RGB") for p in files]))
    names = [{bank.names[c] for c in row} for row in shown]
    return {"root": root, "files": files, "shows": names}


def _corpus(railway: dict[str, object], planted: bool, seed: int = 0) -> Path:
    root, files, shows = railway["root"], railway["files"], railway["shows"]
    assert isinstance(root, Path) and isinstance(files, list) and isinstance(shows, list)
    rng = random.Random(seed)
    accounts, posts = [], []
    for a in range(40):
        acc = f"rail_{a:02d}"
        accounts.append(Account(acc, "influencer", acc, "travel", rng.randint(5_000, 90_000)))
        base = rng.uniform(100, 3000)
        for n, k in enumerate(rng.sample(range(len(files)), 6)):
            lift = 3.0 if planted and PLANTED in shows[k] else 1.0
            posts.append(Post(f"{acc}_p{n}", acc, files[k], "", likes=round(base * lift * rng.lognormvariate(0, 0.2))))
    return write_corpus(Corpus(root, accounts, posts, []))


def _upload(railway: dict[str, object]) -> Image.Image:
    """A photo that does not show a streetcar but shows a passenger car, which streetcars come with."""
    files, shows = railway["files"], railway["shows"]
    assert isinstance(files, list) and isinstance(shows, list)
    k = next(k for k, s in enumerate(shows) if PLANTED not in s and "passenger car" in s)
    return Image.open(files[k]).convert("RGB")


def test_a_planted_concept_is_suggested_with_its_evidence(settings: Settings, railway: dict[str, object]) -> None:
    ingest(_corpus(railway, planted=True), settings)
    report = train_engagement(settings, FAST, activate_anyway=True)  # the suggestions, whatever it scores
    planted = next(e for e in report.evidence.effects if e.name == PLANTED)
    assert planted.qualified and 0 < planted.low < planted.lift < planted.high and planted.kind == "image"
    assert planted.accounts >= 5 and planted.posts >= planted.accounts
    with Store.open(settings) as store:
        scorer = Scorer.load(settings, store)  # the evidence came back from the checkpoint
    [score] = scorer.score([_upload(railway)])
    assert PLANTED in [s.effect.name for s in score.suggestions] and score.suggestion_note == ""
    s = next(s for s in score.suggestions if s.effect.name == PLANTED)
    assert s.effect == planted and s.reason.startswith("the corpus shows it in ")
    assert s.text().startswith(
        f"posts showing streetcar score {planted.lift:+.2f} ({planted.low:+.2f} to "
        f"{planted.high:+.2f}) on the account's scale; {planted.posts:,} posts, "
        f"{planted.accounts:,} accounts held out from training"
    )
    assert suggestion_text(score).startswith("including *")
    basis = scorer.basis
    assert (basis.accounts, basis.held_out_accounts, basis.posts) == (32, 8, 192) and PLANTED in basis.qualified
    assert basis.corpus == Path(str(railway["root"])).name and basis.sentence().startswith(
        f"Scores come from a model trained on 192 posts of 32 accounts (corpus {basis.corpus})."
    )
    # a photo of something the corpus never shows with a streetcar gets no streetcar
    castle = Image.open(next((PHOTOS / "castle").glob("*.jpg"))).convert("RGB")
    [other] = scorer.score([castle])
    assert PLANTED not in [g.effect.name for g in other.suggestions]


def test_shuffled_likes_suggest_nothing_and_say_so(settings: Settings, railway: dict[str, object]) -> None:
    ingest(_corpus(railway, planted=False), settings)
    report = train_engagement(settings, FAST, activate_anyway=True)  # the suggestions, whatever it scores
    assert report.evidence.qualified == [] and report.to_dict()["evidence"]["qualified"] == 0
    with Store.open(settings) as store:
        scorer = Scorer.load(settings, store)
    [score] = scorer.score([_upload(railway)])
    assert score.suggestions == () and score.suggestion_note == NOTHING_QUALIFIES
    assert suggestion_text(score) == NOTHING_QUALIFIES
    assert scorer.basis.qualified == () and np.isfinite(scorer.basis.pairwise_accuracy or 0.0)
