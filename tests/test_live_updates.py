"""A running server sees every acknowledged change: deletions, new accounts, a new head."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from congruence.indexer.ingest import ingest
from congruence.indexer.maintenance import delete_accounts
from congruence.training.deploy import active_spaces
from congruence.training.jobs import train_and_deploy
from congruence.training.loop import TrainConfig

from .server import corpus_with_head, serving

BRAND = "brand_peakfit"


def _ids(url: str, body: dict) -> list[str]:
    r = httpx.post(url + "/v1/match", json=body, timeout=60)
    assert r.status_code == 200, r.text
    return [h["influencer_id"] for h in r.json()["data"]]


def _match(client: httpx.Client, body: dict) -> dict:
    r = client.post("/v1/match", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def answered(count: Callable[[], int], more: int = 4, timeout: float = 120) -> None:
    """Wait until the querying threads have answered ``more`` more times: with 3 threads, 4 more
    answers include one that started after this call (a condition, not a delay)."""
    target, deadline = count() + more, time.monotonic() + timeout
    while count() < target:
        assert time.monotonic() < deadline, f"the querying threads answered {count()} times, waited for {target}"
        time.sleep(0.01)


@contextmanager
def querying(url: str, ask: Callable[[httpx.Client], None], n: int = 3) -> Iterator[None]:
    """``ask`` in a loop on n threads until the block ends; the first failure in a thread
    (a 5xx, a wrong answer) is raised here, in the test's thread, where pytest sees it."""
    stop = threading.Event()
    errors: list[BaseException] = []

    def loop() -> None:
        try:
            with httpx.Client(base_url=url, timeout=60) as client:
                while not stop.is_set():
                    ask(client)
        except BaseException as e:  # handed to the test's thread, where a failure counts
            errors.append(e)

    threads = [threading.Thread(target=loop) for _ in range(n)]
    for t in threads:
        t.start()
    try:
        yield
    finally:
        stop.set()
        for t in threads:
            t.join()
    if errors:
        raise AssertionError(f"{len(errors)} of {n} query threads failed: {errors[0]!r}") from errors[0]


def test_deletions_additions_and_a_new_head_show_up_at_once(pg_url: str, small_corpus: Path, tmp_path: Path) -> None:
    settings = corpus_with_head(pg_url, tmp_path / "home", small_corpus)
    with serving(settings, auth=False) as url:
        first = _ids(url, {"brand_id": BRAND, "k": 18})
        gone = first[0]
        assert delete_accounts(settings, [gone]) == [gone]  # another process's CLI would do the same
        after = _ids(url, {"brand_id": BRAND, "k": 18})
        assert gone not in after and len(after) == 17
        assert httpx.get(f"{url}/v1/influencers/{gone}/similar").status_code == 404

        # a new influencer whose posts are the brand's own pictures
        extra = tmp_path / "extra"
        shutil.copytree(small_corpus / "images", extra / "images")
        (extra / "accounts.jsonl").write_text(
            json.dumps(
                {
                    "id": "newcomer",
                    "kind": "influencer",
                    "handle": "newcomer",
                    "category": "fitness",
                    "followers": 20000,
                }
            )
            + "\n"
        )
        (extra / "posts.jsonl").write_text(
            "".join(
                json.dumps(
                    {
                        "id": f"newcomer_p{i}",
                        "account_id": "newcomer",
                        "image": f"images/brand_peakfit_p{i}.jpg",
                        "caption": "morning run and a gym session",
                    }
                )
                + "\n"
                for i in range(2)
            )
        )
        assert ingest(extra, settings, spaces=active_spaces(settings)).exit_code == 0
        assert "newcomer" in _ids(url, {"brand_id": BRAND, "k": 18})

        old_head = httpx.get(url + "/readyz").json()["head"]
        out = train_and_deploy(
            settings,
            TrainConfig(epochs=2, batch_brands=4, list_size=8, seed=1, device="cpu"),
            ("head",),
            None,
            0.3,
            activate_anyway=True,
        )
        r = httpx.post(url + "/v1/match", json={"brand_id": BRAND, "k": 3}).json()
        assert out.version != old_head and r["ranking"].startswith(f"congruence head {out.version}")
        assert httpx.get(url + "/readyz").json()["head"] == out.version


def test_queries_during_deletions_never_return_an_acknowledged_deletion(
    pg_url: str, small_corpus: Path, tmp_path: Path
) -> None:
    settings = corpus_with_head(pg_url, tmp_path / "home", small_corpus)
    deleted_at: dict[str, float] = {}
    violations: list[str] = []
    answers = [0]

    def query(client: httpx.Client) -> None:
        t0 = time.monotonic()
        body = _match(client, {"brand_id": BRAND, "k": 18, "posts": 0})
        answers[0] += 1
        for h in body["data"]:
            when = deleted_at.get(h["influencer_id"])
            if when is not None and when < t0:
                violations.append(f"{h['influencer_id']} deleted {t0 - when:.3f} s before the query")

    with serving(settings, auth=False) as url:
        victims = _ids(url, {"brand_id": BRAND, "k": 18})[:6]
        with querying(url, query):
            for victim in victims:
                answered(lambda: answers[0], 2)
                assert delete_accounts(settings, [victim]) == [victim]
                deleted_at[victim] = time.monotonic()  # acknowledged
            answered(lambda: answers[0])
    assert not violations, violations[:5]
    assert answers[0] > 10


def test_answers_during_a_head_swap_come_from_one_head(pg_url: str, small_corpus: Path, tmp_path: Path) -> None:
    """Each answer names its head and equals that head's answer exactly: never a mix of two."""
    settings = corpus_with_head(pg_url, tmp_path / "home", small_corpus)
    body = {"brand_id": BRAND, "k": 10, "posts": 1}
    seen: list[tuple[str, list[tuple[str, float]]]] = []

    def query(client: httpx.Client) -> None:
        r = _match(client, body)
        seen.append((r["ranking"].split()[2].rstrip(":"), [(h["influencer_id"], h["score"]) for h in r["data"]]))

    with serving(settings, auth=False) as url, httpx.Client(base_url=url, timeout=60) as client:
        before = _match(client, body)
        with querying(url, query):
            answered(lambda: len(seen))
            out = train_and_deploy(
                settings,
                TrainConfig(epochs=2, batch_brands=4, list_size=8, seed=5, device="cpu"),
                ("head",),
                None,
                0.3,
                activate_anyway=True,
            )
            answered(lambda: len(seen))
        after = _match(client, body)
    old = before["ranking"].split()[2].rstrip(":")
    expected = {
        old: [(h["influencer_id"], h["score"]) for h in before["data"]],
        out.version: [(h["influencer_id"], h["score"]) for h in after["data"]],
    }
    assert expected[old] != expected[out.version]
    versions = {v for v, _ in seen}
    assert versions == {old, out.version}, versions
    for version, hits in seen:
        assert hits == expected[version], version


def test_answers_during_an_adding_ingest_come_from_one_version(pg_url: str, small_corpus: Path, tmp_path: Path) -> None:
    """Queries while an ingest adds influencers (some matching the brand closely): each answer
    equals, hit for hit and score for score, the answer before the ingest or the one after,
    never a mix; once the ingest has returned, only the one after."""
    settings = corpus_with_head(pg_url, tmp_path / "home", small_corpus)
    extra = tmp_path / "extra"
    shutil.copytree(small_corpus / "images", extra / "images")
    newcomers = [f"newcomer_{i}" for i in range(6)]
    (extra / "accounts.jsonl").write_text(
        "".join(
            json.dumps({"id": a, "kind": "influencer", "handle": a, "category": "fitness", "followers": 20000 + i})
            + "\n"
            for i, a in enumerate(newcomers)
        )
    )
    (extra / "posts.jsonl").write_text(
        "".join(
            json.dumps(
                {
                    "id": f"{a}_p{j}",
                    "account_id": a,
                    "image": f"images/brand_peakfit_p{j}.jpg",
                    "caption": "morning run and a gym session",
                }
            )
            + "\n"
            for a in newcomers
            for j in range(2)
        )
    )
    body = {"brand_id": BRAND, "k": 24, "posts": 1}
    seen: list[tuple[float, list[tuple[str, float, str]]]] = []

    def answer(client: httpx.Client) -> list[tuple[str, float, str]]:
        return [(h["influencer_id"], h["score"], h["top_posts"][0]["post_id"]) for h in _match(client, body)["data"]]

    def query(client: httpx.Client) -> None:
        t0 = time.monotonic()
        seen.append((t0, answer(client)))

    with serving(settings, auth=False) as url, httpx.Client(base_url=url, timeout=60) as client:
        before = answer(client)
        with querying(url, query):
            answered(lambda: len(seen))
            assert ingest(extra, settings, spaces=active_spaces(settings)).exit_code == 0
            acknowledged = time.monotonic()
            answered(lambda: len(seen))
        after = answer(client)
    assert set(newcomers) <= {i for i, _, _ in after} and not set(newcomers) & {i for i, _, _ in before}
    mixed = [hits for _, hits in seen if hits not in (before, after)]
    assert not mixed, mixed[0]
    late = [hits for t0, hits in seen if t0 > acknowledged]
    assert late and all(hits == after for hits in late)
    assert any(hits == before for _, hits in seen)
