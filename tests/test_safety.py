"""The brand-safety screen: words, caption meaning, image classes; per-account flags; the
--brand-safe and --exclude-categories filters (against brute force), with and without a head."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import httpx
import numpy as np
import pytest

from congruence.core.errors import InvalidInput
from congruence.core.settings import Settings
from congruence.encoders.encoder_set import EncoderSet
from congruence.indexer.ingest import ingest
from congruence.safety import lexicon
from congruence.safety.lexicon import WordHit, caption_words
from congruence.safety.screen import CHUNK, screen, screen_version
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
FLAGGED = {"fitness_creator_01", "food_creator_02"}  # the accounts of the planted beer and gun posts
# no flagged word, and 0.60 from "war, soldiers and military conflict"; 0.40 from any description
WAR = "Soldiers marching to the front line of the conflict"
MEMORIAL = "Honoring the fallen soldiers at the memorial service today"


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
    settings = Settings(home=tmp / "home", database_url=pg_url, batch_size=16, rate_limit=0, device="cpu")
    ingest(planted(small_corpus, tmp / "corpus"), settings)
    screen(settings)
    if with_head:
        train_and_deploy(
            settings,
            TrainConfig(epochs=2, batch_brands=4, list_size=8, device="cpu"),
            ("head",),
            None,
            0.3,
            activate_anyway=True,
        )
    return settings


def add_posts(corpus: Path, *rows: tuple[str, str, str, str]) -> None:
    """Append (post id, account, caption, ts) posts without an image to ``corpus``."""
    with (corpus / "posts.jsonl").open("a", encoding="utf-8") as f:
        for pid, account, caption, ts in rows:
            f.write(json.dumps({"id": pid, "account_id": account, "image": None, "caption": caption, "ts": ts}) + "\n")


def edit_captions(corpus: Path, captions: dict[str, str]) -> None:
    """Give the posts of ``corpus`` named in ``captions`` their new caption."""
    path = corpus / "posts.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    path.write_text("".join(json.dumps({**r, "caption": captions.get(r["id"], r["caption"])}) + "\n" for r in rows))


def post_flags(settings: Settings, accounts: list[str]) -> dict[str, set[tuple[str, str, str]]]:
    """Post id -> its stored (category, source, evidence) flags, over the posts of ``accounts``."""
    with Store.open(settings) as store:
        got = flag_store.accounts(store, accounts, max_flags=1000)
    out: dict[str, set[tuple[str, str, str]]] = {}
    for a in got.values():
        for f in a.flags:
            out.setdefault(f.post_id, set()).add((f.category, f.source, f.evidence))
    return out


def waiting_posts(settings: Settings) -> set[str]:
    """The ids of the posts waiting for this version of the screen."""
    with Store.open(settings) as store:
        return {p.post_id for p in flag_store.pending(store, screen_version(settings), "", CHUNK)}


def ranked(engine: Engine, brand: str, keep: set[str]) -> list[str]:
    """Brute force: every influencer that passes, by inner product with the brand's vector."""
    space = engine.snapshot.space
    with engine.reading() as store:
        _, ids, xb = VectorStore(store).account_vectors(space, kind="influencer")
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
        match="^exclude_categories names an unknown safety category 'guns': expected one of adult, arms, drugs, "
        "hate_profanity, violence$",
    ):
        Filters.make(exclude_categories=["guns"])
    # several names in one item, as a form field or a query parameter gives them
    assert Filters.make(exclude_categories=["Arms, adult", "drugs"]).exclude_categories == ("adult", "arms", "drugs")
    with pytest.raises(InvalidInput, match="^exclude_categories expects a list of category names$"):
        Filters.make(exclude_categories=["arms", 3])  # type: ignore[list-item]
    # how many newest posts a screen looks at, with no screen asked for: refused, not ignored
    with pytest.raises(InvalidInput, match=r"^safe_last \(5\) applies only with a brand-safety filter"):
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
    # ... and the store's own totals say what was flagged before (an empty run is not "all clean"): the two
    # planted posts, no other (the demo's captions are at most 0.44 from a description, its pictures show none)
    assert doc["store"]["screened"] == 48 + 2 and doc["store"]["flagged"] == 2
    assert doc["store"]["by_category"] == {"arms": 1, "drugs": 1}
    code, out, _ = run(capsys, "match", "--brand", "brand_peakfit", "-k", "18", "--json")
    hits = {h["influencer_id"]: h for h in json.loads(out)["data"]}
    beer = hits["fitness_creator_01"]["safety"]
    assert beer["screened_posts"] == 3 and beer["flagged_posts"] == 1 and beer["flagged_share"] == 0.3333
    words = {(f["post_id"], f["category"], f["evidence"]) for f in beer["flags"] if f["source"] == "words"}
    assert words == {("beer_p", "drugs", "craft beer"), ("beer_p", "drugs", "vodka"), ("beer_p", "drugs", "craftbeer")}
    assert {a for a, h in hits.items() if h["safety"]["flagged_posts"]} == FLAGGED
    flagged = FLAGGED
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
    assert report.screened == 50 and report.waiting == 0 and report.by_category == {"arms": 1, "drugs": 1}
    assert report.flagged == 2
    deploy(settings, trained_head(settings))
    with Engine(settings) as engine:
        assert engine.snapshot.reranks
        hits = engine.match_brand("brand_peakfit", k=18, filters=Filters.make(exclude_categories=["drugs", "arms"]))
        ids = {h.influencer_id for h in hits}
        assert len(ids) == 16 and not ids & {"fitness_creator_01", "food_creator_02"}


def test_caption_meaning_flags_a_caption_without_flagged_words(
    settings: Settings, small_corpus: Path, tmp_path: Path
) -> None:
    """A caption close in meaning to a category's description, with none of its words, is flagged
    by its embedding: the description as evidence, the cosine as score; a caption under the
    threshold is not."""
    assert caption_words(WAR) == [] and caption_words(MEMORIAL) == []
    corpus = Path(shutil.copytree(small_corpus, tmp_path / "corpus"))
    add_posts(
        corpus,
        ("war_p", "travel_creator_00", WAR, "2030-01-01T00:00:00Z"),
        ("memorial_p", "pets_creator_00", MEMORIAL, "2030-01-01T00:00:00Z"),
    )
    ingest(corpus, settings)
    report = screen(settings)
    assert (report.screened, report.flagged, report.by_category) == (50, 1, {"violence": 1})
    described = "war, soldiers and military conflict"
    cap, desc = EncoderSet(settings).text.encode([WAR, described], normalize=True)
    with Store.open(settings) as store:
        got = flag_store.accounts(store, ["travel_creator_00", "pets_creator_00"])
    [flag] = got["travel_creator_00"].flags
    assert (flag.post_id, flag.category, flag.source, flag.evidence) == ("war_p", "violence", "caption", described)
    assert flag.score == pytest.approx(float(cap @ desc), abs=1e-3) and flag.score >= 0.5
    assert got["travel_creator_00"].flagged == 1 and got["pets_creator_00"].flagged == 0
    with Engine(settings) as engine:
        everyone = set(engine.snapshot.table.ids)
        for filters, keep in (
            (Filters.make(exclude_categories=["violence"]), everyone - {"travel_creator_00"}),
            (Filters.make(brand_safe=True), everyone - {"travel_creator_00"}),
            (Filters.make(exclude_categories=["arms", "drugs"]), everyone),
        ):
            hits = engine.match_brand("brand_wanderly", k=18, filters=filters)
            assert [h.influencer_id for h in hits] == ranked(engine, "brand_wanderly", keep)


def test_an_edited_post_is_screened_again_and_its_flags_follow(
    settings: Settings, small_corpus: Path, tmp_path: Path
) -> None:
    corpus = planted(small_corpus, tmp_path / "corpus")
    ingest(corpus, settings)
    assert screen(settings).screened == 50
    assert screen(settings).screened == 0 and waiting_posts(settings) == set()  # nothing changed: nothing read
    # the beer post's caption is cleaned up, a clean post gets the gun caption: ingested again
    edit_captions(corpus, {"beer_p": "Sunday smoothie bowl with fresh berries", "travel_creator_00_p0": GUN})
    ingest(corpus, settings)
    assert waiting_posts(settings) == {"beer_p", "travel_creator_00_p0"}  # exactly the edited posts
    report = screen(settings)
    assert (report.screened, report.flagged, report.by_category, report.waiting) == (2, 1, {"arms": 1}, 0)
    flags = post_flags(settings, ["fitness_creator_01", "travel_creator_00", "food_creator_02"])
    assert "beer_p" not in flags  # the old caption's flags are gone
    assert {(c, w) for c, src, w in flags["travel_creator_00_p0"] if src == "words"} == {
        ("arms", "glock"),
        ("arms", "gun range"),
    }
    assert flags["travel_creator_00_p0"] == flags["gun_p"] and set(flags) == {"travel_creator_00_p0", "gun_p"}
    with Store.open(settings) as store:
        assert flag_store.totals(store, screen_version(settings)) == (50, 2, {"arms": 2})
    with Engine(settings) as engine:
        everyone = set(engine.snapshot.table.ids)
        hits = engine.match_brand("brand_peakfit", k=18, filters=Filters.make(brand_safe=True))
        keep = everyone - {"travel_creator_00", "food_creator_02"}
        assert [h.influencer_id for h in hits] == ranked(engine, "brand_peakfit", keep)


def test_a_new_version_of_the_screen_screens_every_post_again(
    settings: Settings, small_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    corpus = planted(small_corpus, tmp_path / "corpus")
    ingest(corpus, settings)
    assert screen(settings).screened == 50 and waiting_posts(settings) == set()
    every = {json.loads(line)["id"] for line in (corpus / "posts.jsonl").read_text().splitlines()}
    before = screen_version(settings)
    # how captions are matched changes (the words do not): every post waits, and is screened again
    monkeypatch.setattr(lexicon, "MATCHING", lexicon.MATCHING + 1)
    assert screen_version(settings) != before
    assert waiting_posts(settings) == every and len(every) == 50
    with Store.open(settings) as store:
        assert flag_store.waiting(store, screen_version(settings)) == 38  # the influencers' 36 and 2 planted
    report = screen(settings)
    assert (report.screened, report.flagged, report.by_category, report.waiting) == (50, 2, {"arms": 1, "drugs": 1}, 0)
    assert waiting_posts(settings) == set() and screen(settings).screened == 0
    # a word joins a list: every post again, and the flags follow the new list
    words = {**lexicon.OWN_WORDS, "drugs": (*lexicon.OWN_WORDS["drugs"], "coffee")}
    with monkeypatch.context() as m:
        m.setattr(lexicon, "OWN_WORDS", words)
        lexicon._own_patterns.cache_clear()
        try:
            coffee = {
                r["id"]
                for r in map(json.loads, (corpus / "posts.jsonl").read_text().splitlines())
                if re.search(r"(?<![\w-])coffee(?![\w-])", r["caption"] or "", re.IGNORECASE)
            }
            assert len(coffee) >= 2 and waiting_posts(settings) == every
            report = screen(settings)
            assert report.screened == 50 and report.by_category == {"arms": 1, "drugs": 1 + len(coffee)}
            flags = post_flags(settings, sorted({p.rsplit("_p", 1)[0] for p in every} | FLAGGED))
            assert set(flags) == coffee | {"beer_p", "gun_p"}
            assert all(("drugs", "words", "coffee") in flags[p] for p in coffee)
        finally:
            lexicon._own_patterns.cache_clear()


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
    # the post's picture is replaced by a hound's (same file name, new content) and ingested again:
    # that post alone is screened again, and the holster's flag goes
    shutil.copy(PHOTOS / "Afghan_hound" / "n02088094_1045.jpg", tmp_path / "new" / "images" / "n.jpg")
    ingest(tmp_path / "new", settings)
    assert waiting_posts(settings) == {"np1"}
    report = screen(settings)
    assert (report.screened, report.flagged, report.by_category) == (1, 0, {})
    with Store.open(settings) as store:
        again = flag_store.accounts(store, ["new_creator"])["new_creator"]
    assert (again.screened, again.flagged, again.flags) == (1, 0, ())
