"""A suggestion that qualifies, served: through POST /v1/score on the real server, through
``congruence score`` and on the score page in a real Chromium.

The corpus is planted: 40 accounts of 4 demo pictures each, two of them darkened (mean luminance
0.12-0.28) and two lightened (0.62-0.85), liked e^(3 x luminance) times the account's usual (with
noise). Eight accounts chosen here are held out. Brightness must qualify, and only a dark upload
may get "a brighter picture", with the evidence counted from what was planted: every held-out
account compares 2 dark with 2 light posts, and the corpus median lies between the darkest light
and the lightest dark training picture.
"""

from __future__ import annotations

import json
import math
import random
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from congruence.core.settings import Settings
from congruence.datasets.demo import STYLES, caption, draw
from congruence.engagement.model import EngagementConfig
from congruence.engagement.train import train_engagement
from congruence.indexer.corpus import Corpus, Post
from congruence.indexer.corpus_write import write_corpus
from congruence.indexer.ingest import ingest
from congruence.store import database
from congruence.store.rows import Account

from .conftest import TABLES, run
from .server import serving
from .test_web import CHROMIUM, _shot, browser, page  # noqa: F401 (fixtures)

ACCOUNTS = [f"lit_{a:02d}" for a in range(40)]
HELD_OUT = ACCOUNTS[::5]  # 8 accounts
FAST = EngagementConfig(epochs=2, members=1, batch_accounts=8, val_fraction=0.0)
DARK, LIGHT = 0.2, 0.8  # the uploads' mean luminance


def mean_luminance(img: Image.Image) -> float:
    """Mean luminance 0..1, at full size."""
    return sum(i * n for i, n in enumerate(img.convert("L").histogram())) / (img.width * img.height * 255)


def luminance(path: Path) -> float:
    with Image.open(path) as img:
        return mean_luminance(img)


def lit(img: Image.Image, target: float) -> Image.Image:
    """``img`` blended with black (darker) or white (lighter) to a mean luminance of ``target``."""
    now = mean_luminance(img)
    if target <= now:
        return Image.blend(img, Image.new("RGB", img.size, (0, 0, 0)), 1 - target / now)
    return Image.blend(img, Image.new("RGB", img.size, (255, 255, 255)), (target - now) / (1 - now))


@pytest.fixture(scope="module")
def served(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """The planted corpus ingested, an engagement model trained (on the CPU) and in service, a real server."""
    root = tmp_path_factory.mktemp("lit")
    (root / "corpus" / "images").mkdir(parents=True)
    rng = random.Random(0)
    cats = list(STYLES)
    accounts, posts, light = [], [], {}
    for a, acc in enumerate(ACCOUNTS):
        cat = cats[a % len(cats)]
        accounts.append(Account(acc, "influencer", acc, cat, rng.randint(5_000, 90_000)))
        base = rng.uniform(100, 3000)
        targets = [rng.uniform(0.12, 0.28), rng.uniform(0.12, 0.28), rng.uniform(0.62, 0.85), rng.uniform(0.62, 0.85)]
        rng.shuffle(targets)
        for n, target in enumerate(targets):
            pid, path = f"{acc}_p{n}", root / "corpus" / "images" / f"{acc}_p{n}.jpg"
            lit(draw(cat, rng), target).save(path, quality=90)
            b = luminance(path)
            light[pid] = b > 0.5
            likes = round(base * math.exp(3.0 * b) * rng.lognormvariate(0, 0.1))
            posts.append(Post(pid, acc, path, caption(cat, rng), likes=likes))
    corpus = write_corpus(Corpus(root / "corpus", accounts, posts, []))
    train_lum = sorted(luminance(p.image) for p in posts if p.account_id not in HELD_OUT and p.image)
    # an even count, half of them dark: the median is halfway between the lightest dark and the darkest light
    median = (train_lum[len(train_lum) // 2 - 1] + train_lum[len(train_lum) // 2]) / 2
    assert train_lum[len(train_lum) // 2 - 1] < 0.3 and train_lum[len(train_lum) // 2] > 0.6

    with database.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")
    settings = Settings(home=root / "home", database_url=pg_url, batch_size=16, rate_limit=0, device="cpu")
    ingest(corpus, settings)
    report = train_engagement(settings, FAST, HELD_OUT, activate_anyway=True)  # the suggestions, whatever it scores
    uploads = root / "uploads"
    uploads.mkdir()
    for name, target in (("dark.jpg", DARK), ("light.jpg", LIGHT)):
        lit(draw("travel", random.Random(99)), target).save(uploads / name, quality=95)
    with serving(settings, auth=False) as url:
        yield {
            "url": url,
            "settings": settings,
            "version": report.version,
            "median": median,
            "uploads": [uploads / "dark.jpg", uploads / "light.jpg"],
            "held_light": sum(v for k, v in light.items() if k.rsplit("_p", 1)[0] in HELD_OUT),
        }


def check_brightness(s: dict, site: dict, image: Path) -> None:
    """A suggestion of a brighter picture whose evidence is what the planted corpus holds."""
    assert (s["concept"], s["label"], s["kind"]) == ("brightness", "a brighter picture", "property")
    low, high = s["ci95"]
    assert 0 < low < s["lift"] < high  # held up on the held-out accounts
    assert s["accounts"] == len(HELD_OUT) and s["posts"] == site["held_light"] == 2 * len(HELD_OUT)
    m = re.fullmatch(r"this image (\d+)% brightness, the corpus median (\d+)%", s["reason"])
    assert m, s["reason"]
    assert abs(int(m[1]) / 100 - luminance(image)) <= 0.015 and abs(int(m[2]) / 100 - site["median"]) <= 0.015
    assert s["text"] == (
        f"brighter pictures score {s['lift']:+.2f} ({low:+.2f} to {high:+.2f}) on the account's scale; "
        f"{s['posts']} posts, {s['accounts']} accounts held out from training ({s['reason']})"
    )


def check_light(d: dict, site: dict) -> None:
    """The light upload: no suggestion, and the sentence says it is already bright enough."""
    assert d["suggestions"] == []
    m = re.fullmatch(
        r"No suggestion for this image: of the concepts with a measured effect \((.+)\), none fits it: (.+)\.",
        d["suggestion_note"],
    )
    assert m and "brightness" in m[1].split(", "), d["suggestion_note"]
    assert "it is already at least as bright as the corpus median" in m[2]


def test_a_qualified_suggestion_comes_through_the_api(served: dict) -> None:
    dark, light = served["uploads"]
    files = [("images", (p.name, p.read_bytes(), "image/jpeg")) for p in (dark, light)]
    r = httpx.post(served["url"] + "/v1/score", files=files, data={"caption0": "an evening walk"}, timeout=120)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == served["version"] and body["count"] == 2
    assert [d["filename"] for d in body["data"]] == ["light.jpg", "dark.jpg"]  # likes follow brightness
    by_name = {d["filename"]: d for d in body["data"]}
    [s] = [g for g in by_name["dark.jpg"]["suggestions"] if g["concept"] == "brightness"]
    check_brightness(s, served, dark)
    assert by_name["dark.jpg"]["suggestion_note"] == ""
    check_light(by_name["light.jpg"], served)
    assert "brightness" in body["basis"]["concepts_qualified"]
    assert body["basis"]["held_out_accounts"] == len(HELD_OUT) and body["basis"]["accounts"] == 32
    # the model's evidence says the same as the suggestion
    model = httpx.get(served["url"] + "/v1/score/model", timeout=60).json()
    [ev] = [e for e in model["evidence"] if e["name"] == "brightness"]
    assert ev["qualified"] and (ev["posts"], ev["accounts"]) == (s["posts"], s["accounts"])
    assert [ev["lift"], *ev["ci95"]] == pytest.approx([s["lift"], *s["ci95"]], abs=1e-3)


def test_a_qualified_suggestion_comes_through_the_cli(
    served: dict, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings: Settings = served["settings"]
    monkeypatch.setenv("CONGRUENCE_HOME", str(settings.home))
    monkeypatch.setenv("DATABASE_URL", str(settings.database_url))
    monkeypatch.setenv("CONGRUENCE_DEVICE", "cpu")
    dark, light = served["uploads"]
    code, out, err = run(capsys, "score", str(light), str(dark), "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["model"] == served["version"] and doc["ranking"] == [str(light), str(dark)]
    assert [d["image"] for d in doc["data"]] == [str(light), str(dark)]
    [s] = [g for g in doc["data"][1]["suggestions"] if g["concept"] == "brightness"]
    check_brightness(s, served, dark)
    check_light(doc["data"][0], served)
    # the same through the API: one model, one answer
    api = httpx.post(
        served["url"] + "/v1/score", files=[("images", ("dark.jpg", dark.read_bytes(), "image/jpeg"))], timeout=120
    ).json()
    assert api["data"][0]["suggestions"] == doc["data"][1]["suggestions"]
    # without --json: the sentence a person reads names what to add and its evidence
    code, out, err = run(capsys, "score", str(dark))
    assert code == 0, err
    assert f"including *a brighter picture* may help: {s['text']}" in out


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (apt-get install chromium)")
def test_the_score_page_shows_the_servers_suggestion(served: dict, page) -> None:  # type: ignore[no-untyped-def]
    """The page, the real server's answer: the dark upload's suggestion with its evidence, in the
    server's words; the light one's sentence why there is none."""
    dark, light = served["uploads"]
    page.goto(served["url"] + "/score")
    page.wait_for_function("document.getElementById('evidence-text').textContent.length > 0")
    held_up = "Concepts whose effect held up on held-out accounts (lift on the account's scale, 95 % interval): "
    assert page.locator("#evidence-text").inner_text().startswith(held_up + "brightness +")
    page.set_input_files("#files", [str(dark), str(light)])
    with page.expect_response("**/v1/score") as answer:
        page.click("#score-btn")
    assert answer.value.status == 200
    body = answer.value.json()
    page.wait_for_selector(".scored .suggestions li")
    by_name = {d["filename"]: d for d in body["data"]}
    [s] = [g for g in by_name["dark.jpg"]["suggestions"] if g["concept"] == "brightness"]
    check_brightness(s, served, dark)
    item = page.locator('.scored[data-index="0"] .suggestions li[data-concept="brightness"]')
    assert item.inner_text() == f"Try a brighter picture: {s['text']}."
    note = page.locator('.scored[data-index="1"] .no-suggestion')
    assert note.inner_text() == by_name["light.jpg"]["suggestion_note"]
    check_light(by_name["light.jpg"], served)
    assert page.locator(".scored .place").all_inner_texts() == ["1", "2"]
    assert page.locator("#status").inner_text() == "Image 2 (light.jpg) is expected to get the most attention."
    _shot(page, "score-page-suggestion")
