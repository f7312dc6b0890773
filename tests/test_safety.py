"""The brand-safety screen: words, caption meaning, image classes; per-account flags; the
--brand-safe and --exclude-categories filters (against brute force), with and without a head."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
import numpy as np
import pytest

from congruence.core.errors import InvalidInput
from congruence.core.settings import Settings
from congruence.indexer.ingest import ingest
from congruence.safety.lexicon import WordHit, caption_words
from congruence.safety.screen import screen
from congruence.search.engine import Engine
from congruence.search.filters import Filters
from congruence.store import database
from congruence.store import flags as flag_store
from congruence.store.records import Store
from congruence.store.vectors import VectorStore
from congruence.training.deploy import deploy
from congruence.training.jobs import train_and_deploy
from congruence.training.loop import TrainConfig

from .conftest import PHOTOS, TABLES, requires_photos, run
from .server import serving
from .test_head_product import one_post_corpus, trained_head

BEER = "Cheers! craft beer and vodka shots tonight #craftbeer"
GUN = "My new glock, straight to the gun range"


def planted(small_corpus: Path, folder: Path) -> Path:
    """The small corpus plus an old beer post of fitness_creator_01 (its third newest of 3)
    and a newest gun post of food_creator_02."""
    shutil.copytree(small_corpus, folder)
    with (folder / "posts.jsonl").open("a", encoding="utf-8") as f:
        for pid, account, caption, ts in (
            ("beer_p", "fitness_creator_01", BEER, "2020-01-01T00:00:00Z"),
            ("gun_p", "food_creator_02", GUN, "2030-01-01T00:00:00Z"),
        ):
            f.write(json.dumps({"id": pid, "account_id": account, "image": None, "caption": caption, "ts": ts}) + "\n")
    return folder


def planted_store(pg_url: str, small_corpus: Path, tmp: Path, with_head: bool) -> Settings:
    """An empty database holding the planted corpus, screened, with a trained head in service
    (``with_head``) or on the pooled embeddings: what the feedback tests serve."""
    with database.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")
    settings = Settings(home=tmp / "home", database_url=pg_url, batch_size=16, rate_limit=0)
    ingest(planted(small_corpus, tmp / "corpus"), settings)
    screen(settings)
    if with_head:
        train_and_deploy(
            settings, TrainConfig(epochs=2, batch_brands=4, list_size=8), ("head",), None, 0.3, activate_anyway=True
        )
    return settings


def ranked(engine: Engine, brand: str, keep: set[str]) -> list[str]:
    """Brute force: every influencer that passes, by inner product with the brand's vector."""
    space = engine.snapshot.space
    _, ids, xb = VectorStore(engine.store).account_vectors(space, kind="influencer")
    q = engine.entry(engine.snapshot, brand, "brand").vector
    order = np.argsort(-(xb @ q), kind="stable")
    return [ids[i] for i in order if ids[i] in keep]


def test_caption_words_by_category() -> None:
    assert caption_words(BEER) == [
        WordHit("drugs", "craft beer"),
        WordHit("drugs", "vodka"),
        WordHit("drugs", "craftbeer"),
    ]
    assert caption_words(GUN) == [WordHit("arms", "glock"), WordHit("arms", "gun range")]
    assert caption_words("what the f*ck is this shit") == [
        WordHit("hate_profanity", "f*ck"),
        WordHit("hate_profanity", "fuck"),
        WordHit("hate_profanity", "shit"),
    ]
    assert caption_words("sexy nude lipstick for the photo shooting, burgundy and seaweed") == []
    # a hashtag's sign is not a leetspeak 's': #cat is not "scat", while #fuck still counts
    assert caption_words("Loving this kitten today #cat #hit") == []
    assert caption_words("#fuck mondays") == [WordHit("hate_profanity", "fuck")]
    assert [h.word for h in caption_words("what a b#tch of a day")] != []  # inside a word, '#' may be a letter
    with pytest.raises(
        InvalidInput,
        match="^unknown safety category 'guns': expected one of adult, arms, drugs, hate_profanity, violence$",
    ):
        Filters.make(exclude_categories=["guns"])
    # several names in one item, as a form field or a query parameter gives them
    assert Filters.make(exclude_categories=["Arms, adult", "drugs"]).exclude_categories == ("adult", "arms", "drugs")
    with pytest.raises(InvalidInput, match="^exclude_categories: expected a list of category names$"):
        Filters.make(exclude_categories=["arms", 3])  # type: ignore[list-item]
    # how many newest posts a screen looks at, with no screen asked for: refused, not ignored
    with pytest.raises(InvalidInput, match=r"^safe_last \(5\) needs brand_safe or exclude_categories"):
        Filters.make(safe_last=5)
    assert Filters.make(brand_safe=True, safe_last=5).safe_last == 5


def test_screen_flags_and_filters_through_the_cli(
    env: Settings, small_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = planted(small_corpus, tmp_path / "corpus")
    assert run(capsys, "ingest", str(corpus), "--json")[0] == 0  # ingest runs the screen
    code, out, _ = run(capsys, "screen", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["screened"] == 0  # incremental: nothing left to screen
    # ... and the store's own totals say what was flagged before (an empty run is not "all clean")
    assert doc["store"]["screened"] == 48 + 2 and doc["store"]["flagged"] >= 2
    assert {"arms", "drugs"} <= set(doc["store"]["by_category"])
    code, out, _ = run(capsys, "match", "--brand", "brand_peakfit", "-k", "18", "--json")
    hits = {h["influencer_id"]: h for h in json.loads(out)["data"]}
    beer = hits["fitness_creator_01"]["safety"]
    assert beer["screened_posts"] == 3 and beer["flagged_posts"] == 1 and beer["flagged_share"] == 0.3333
    words = {(f["post_id"], f["category"], f["evidence"]) for f in beer["flags"] if f["source"] == "words"}
    assert words == {("beer_p", "drugs", "craft beer"), ("beer_p", "drugs", "vodka"), ("beer_p", "drugs", "craftbeer")}
    with Store.open(env) as store:
        flagged = {a for a, s in flag_store.accounts(store, list(hits)).items() if s.flagged}
    assert {"fitness_creator_01", "food_creator_02"} <= flagged
    with Engine(env) as engine:
        everyone = set(engine.snapshot.table.ids)
        cases = {
            ("--brand-safe",): everyone - flagged,
            ("--exclude-categories", "arms"): everyone - {"food_creator_02"},
            ("--brand-safe", "--safe-last", "1"): everyone - (flagged - {"fitness_creator_01"}),
        }
        expected = {args: ranked(engine, "brand_peakfit", keep) for args, keep in cases.items()}
    for args, want in expected.items():
        code, out, err = run(capsys, "match", "--brand", "brand_peakfit", "-k", "18", "--json", *args)
        assert code == 0, err
        assert [h["influencer_id"] for h in json.loads(out)["data"]] == want, args  # never starved
    code, out, _ = run(
        capsys, "similar", "--influencer", "food_creator_00", "fitness_creator_00", "-k", "18", "--brand-safe", "--json"
    )
    got = {h["influencer_id"] for h in json.loads(out)["data"]}
    assert got == everyone - flagged - {"food_creator_00", "fitness_creator_00"}
    code, _, err = run(
        capsys,
        "export",
        "--brands",
        "all",
        "-k",
        "18",
        "--brand-safe",
        "--format",
        "jsonl",
        "--out",
        str(tmp_path / "safe.jsonl"),
    )
    assert code == 0, err
    rows = [json.loads(line) for line in (tmp_path / "safe.jsonl").read_text().splitlines()]
    assert rows and not {r["influencer_id"] for r in rows} & flagged


def test_brand_safe_with_a_head_and_unscreened_posts(settings: Settings, small_corpus: Path, tmp_path: Path) -> None:
    corpus = planted(small_corpus, tmp_path / "corpus")
    ingest(corpus, settings)
    unscreened = "^38 influencer posts have not been screened for brand safety yet: run `congruence screen`$"
    # ingested without the screen: brand-safe refuses to guess
    with Engine(settings) as engine, pytest.raises(InvalidInput, match=unscreened):
        engine.match_brand("brand_peakfit", filters=Filters.make(brand_safe=True))
    with serving(settings, auth=False) as url:  # an export says so at once, not as a job failed later
        asked = httpx.post(f"{url}/v1/exports", json={"brands": ["brand_peakfit"], "brand_safe": True}, timeout=60)
        assert asked.status_code == 422 and "have not been screened for brand safety yet" in asked.text
    report = screen(settings)
    assert report.screened == 50 and report.waiting == 0 and report.by_category["drugs"] >= 1
    deploy(settings, trained_head(settings))
    with Engine(settings) as engine:
        assert engine.snapshot.reranks
        hits = engine.match_brand("brand_peakfit", k=18, filters=Filters.make(exclude_categories=["drugs", "arms"]))
        ids = {h.influencer_id for h in hits}
        assert len(ids) == 16 and not ids & {"fitness_creator_01", "food_creator_02"}


@requires_photos()
def test_image_classes_flag_a_real_photo(settings: Settings, small_corpus: Path, tmp_path: Path) -> None:
    ingest(small_corpus, settings)
    holster = PHOTOS / "holster" / "n03527444_11096.jpg"  # a holster at p = 0.79
    ingest(one_post_corpus(tmp_path / "new", holster, "new_creator", "fashion", "new look"), settings)
    screen(settings)
    with Store.open(settings) as store:
        got = flag_store.accounts(store, ["new_creator", "food_creator_00"])
    image = [f for f in got["new_creator"].flags if f.source == "image"]
    assert image and image[0].category == "arms" and image[0].evidence == "holster" and image[0].score >= 0.25
    assert got["new_creator"].share == 1.0 and got["food_creator_00"].flagged == 0
