"""Follower history: dated snapshots kept by each ingest that sees a count change, the monthly
growth rate and the growth_spike flag (by hand), the --min-growth/--max-growth filters (against
brute force over the stored figures), and the history in the CLI, the API and the account page."""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import pytest

from congruence.core.settings import Settings
from congruence.datasets.demo import build_demo
from congruence.indexer.account_metrics.growth import growth_monthly, growth_spike_flags
from congruence.indexer.corpus import RowInvalid, parse_account
from congruence.indexer.ingest import ingest
from congruence.search.engine import Engine
from congruence.search.export import ExportSpec, run_export
from congruence.search.filters import Filters
from congruence.search.metric_filters import MetricBounds
from congruence.store import database
from congruence.store.account_metrics import AccountArrays
from congruence.store.follower_history import Snapshot, SnapshotArrays, dated, merge
from congruence.store.records import Store

from .conftest import TABLES, run
from .server import serving
from .test_export import read_rows
from .test_web import CHROMIUM, browser, page  # noqa: F401  (fixtures)

DAY = 86400.0
BRAND = "brand_peakfit"
JUMPER = "food_creator_00"
N = 24  # influencers in the served corpus
DATES = ("2026-01-01T00:00:00+00:00", "2026-02-01T00:00:00+00:00", "2026-03-01T00:00:00+00:00")


def _arrays(series: dict[int, list[tuple[float, float]]]) -> SnapshotArrays:
    rows = [(a, d * DAY, f) for a, pts in series.items() for d, f in pts]
    acc, ts, fol = (np.array(c) for c in zip(*rows, strict=True))
    return SnapshotArrays(acc.astype(np.int64), ts.astype(np.float64), fol.astype(np.float64))


def test_growth_monthly_by_hand() -> None:
    s = _arrays(
        {
            0: [(0, 1000), (40, 1100), (100, 1300)],  # base: the oldest of the 90 days before (day 40)
            1: [(0, 1000), (3, 1200)],  # no two snapshots 7 days apart: unknown
            2: [(0, 500), (200, 800)],  # none in the 90 days: the newest 7+ days older (day 0)
            3: [(5, 900)],  # one snapshot: unknown
            4: [(0, 0), (30, 100)],  # from 0 followers: unknown
            5: [(0, 1000), (95, 2000), (100, 2000)],  # day 95 is only 5 days older; day 0 is 100 days older
        }
    )
    g, n = growth_monthly(7, s)
    assert g[0] == pytest.approx((1300 / 1100) ** (30.44 / 60) - 1)
    assert g[2] == pytest.approx((800 / 500) ** (30.44 / 200) - 1)
    assert g[5] == pytest.approx((2000 / 1000) ** (30.44 / 100) - 1)
    assert all(math.isnan(g[i]) for i in (1, 3, 4, 6))
    assert n.tolist() == [3, 2, 2, 1, 2, 3, 0]


def _peers(jump: float, volatile: bool = False, n: int = 26) -> tuple[AccountArrays, SnapshotArrays]:
    """n food influencers (10k-50k followers) growing about 2 % a month, one snapshot every two
    weeks; the last one rises by ``jump`` between its 4th and 5th; ``volatile``: that one always
    swings by about that much."""
    rng = np.random.default_rng(7)
    series: dict[int, list[tuple[float, float]]] = {}
    for i in range(n):
        f, pts = 20_000.0, []
        for w in range(6):
            pts.append((w * 14.0, round(f)))
            f *= 1 + rng.normal(0.01, 0.004)
        series[i] = pts
    last = series[n - 1]
    if volatile:
        series[n - 1] = [(d, 20_000 * (1 + jump) ** (w % 2)) for w, (d, _) in enumerate(last)]
    else:
        series[n - 1] = [*last[:4], (last[4][0], last[3][1] * (1 + jump)), (last[5][0], last[3][1] * (1 + jump))]
    acc = AccountArrays(
        [f"a{i}" for i in range(n)], ["influencer"] * n, ["food"] * n, np.array([p[-1][1] for p in series.values()])
    )
    return acc, _arrays(series)


def test_spike_fires_on_a_jump_and_says_why() -> None:
    acc, s = _peers(0.6)
    flags = growth_spike_flags(acc, s)
    assert [i for i, f in enumerate(flags) if f] == [25]
    (f,) = flags[25]
    assert f.signal == "growth_spike" and f.threshold == 3.5 and f.value > 10
    assert f.text.startswith("followers rose 60 % (") and "food influencers with 10k-50k followers" in f.text
    assert "against its own 4 other rises" in f.text


def test_no_spike_for_steady_growth_a_small_rise_an_own_habit_or_too_few_peers() -> None:
    assert not any(growth_spike_flags(*_peers(0.0)))
    assert not any(growth_spike_flags(*_peers(0.04)))  # beyond the peers' range, but under 5 %
    assert not any(growth_spike_flags(*_peers(0.6, volatile=True)))  # it always swings so: its own history
    assert not any(growth_spike_flags(*_peers(0.6, n=4)))  # 4 accounts: no peer group


def test_followers_at_is_parsed_or_refused() -> None:
    row = {"id": "x", "kind": "influencer", "followers": 10}
    assert parse_account(row | {"followers_at": "2026-02-01"}).extra["followers_at"] == "2026-02-01T00:00:00+00:00"
    assert parse_account(row | {"followers_at": 1767225600}).extra["followers_at"] == "2026-01-01T00:00:00+00:00"
    assert "followers_at" not in parse_account(row | {"followers_at": None}).extra
    with pytest.raises(RowInvalid, match="field 'followers_at' is not a timestamp"):
        parse_account(row | {"followers_at": "last week"})
    with pytest.raises(RowInvalid, match="field 'followers_at' is in the future"):
        parse_account(row | {"followers_at": "2999-01-01"})


def _write_accounts(folder: Path, counts: dict[str, int], at: str | None) -> None:
    """Rewrite the corpus's accounts with these follower counts, dated ``at`` (None: undated)."""
    rows = [json.loads(line) for line in (folder / "accounts.jsonl").read_text().splitlines()]
    with (folder / "accounts.jsonl").open("w") as f:
        for r in rows:
            r.pop("followers_at", None)
            if r["id"] in counts:
                r["followers"] = counts[r["id"]]
                if at is not None:
                    r["followers_at"] = at
            f.write(json.dumps(r) + "\n")


def _three_months(folder: Path, settings: Settings) -> dict[str, list[int]]:
    """Ingest the corpus three times, a month apart: every influencer at 20,000-21,700 followers
    growing 1.5-2.5 % a month, except JUMPER: flat, then +50 %. Returns the counts given."""
    ids = [json.loads(line)["id"] for line in (folder / "accounts.jsonl").read_text().splitlines()]
    ids = [i for i in ids if not i.startswith("brand_")]
    counts = {a: [20_000 + 100 * i] for i, a in enumerate(ids)}
    for i, a in enumerate(ids):
        r = 1.015 + 0.001 * (i % 11)
        counts[a] += [round(counts[a][0] * r), round(counts[a][0] * r * r)]
    counts[JUMPER] = [20_000, 20_000, 30_000]
    for month, at in enumerate(DATES):
        _write_accounts(folder, {a: c[month] for a, c in counts.items()}, at)
        ingest(folder, settings)
    return counts


@pytest.fixture(scope="module")
def site(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """A demo corpus of 24 influencers (a peer group needs 20 accounts) through three monthly
    ingests (``_three_months``), served without auth."""
    with database.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")
    home = tmp_path_factory.mktemp("followers")
    folder = build_demo(
        home / "corpus",
        influencers_per_category=N // 6,
        posts_per_influencer=1,
        posts_per_brand=1,
        partner_brands=0,
        direct_brands=1,
        collaborations=False,
    )
    settings = Settings(home=home / "home", database_url=pg_url, batch_size=16, rate_limit=0, device="cpu")
    counts = _three_months(folder, settings)
    with serving(settings, auth=False) as url:
        yield {"url": url, "settings": settings, "counts": counts, "folder": folder}


def _at(i: int) -> datetime:
    return datetime.fromisoformat(DATES[i])


def test_history_and_growth_by_hand(site: dict, monkeypatch: pytest.MonkeyPatch, capsys) -> None:  # type: ignore[no-untyped-def]
    s: Settings = site["settings"]
    monkeypatch.setenv("CONGRUENCE_HOME", str(s.home))
    monkeypatch.setenv("DATABASE_URL", str(s.database_url))
    code, out, err = run(capsys, "account", JUMPER, "--json")
    assert code == 0, err
    acc = json.loads(out)
    # the February count equals January's: January's run was seen again then
    assert acc["follower_history"] == [
        {"followers": 20_000, "at": DATES[0], "source": "given", "last_seen": DATES[1]},
        {"followers": 30_000, "at": DATES[2], "source": "given", "last_seen": None},
    ]
    days = (_at(2) - _at(0)).days
    assert acc["metrics"]["growth_monthly"] == pytest.approx(1.5 ** (30.44 / days) - 1)
    assert acc["metrics"]["follower_snapshots"] == 3  # sightings: January, February, March
    (flag,) = acc["metrics"]["flags"]
    assert flag["signal"] == "growth_spike" and flag["threshold"] == 3.5 and flag["value"] > 3.5
    # the jump lies between the last sighting of 20,000 and the first of 30,000
    assert flag["text"].startswith("followers rose 50 % (20,000 to 30,000) between 2026-02-01 and 2026-03-01")
    other = "travel_creator_01"
    c = site["counts"][other]
    code, out, _ = run(capsys, "account", other, "--json")
    got = json.loads(out)
    assert [p["followers"] for p in got["follower_history"]] == c
    # newest March 1; the oldest of the 90 days before it: January 1
    assert got["metrics"]["growth_monthly"] == pytest.approx((c[2] / c[0]) ** (30.44 / days) - 1)
    assert got["metrics"]["flags"] == []
    code, out, _ = run(capsys, "account", JUMPER)
    assert "follower growth +" in out and "follower history (2 counts):" in out
    assert "2026-01-01        20,000  (given, seen again until 2026-02-01)" in out and "2026-03-01        30,000" in out


def test_growth_filters_against_brute_force(site: dict, tmp_path: Path) -> None:
    s: Settings = site["settings"]
    with Store.open(s) as store:
        growth = dict(
            store.conn.execute(
                "SELECT m.account_id, m.growth_monthly FROM account_metrics m JOIN accounts a ON a.id = m.account_id"
                " WHERE a.kind = 'influencer'"
            ).fetchall()
        )
    assert len(growth) == N and all(g is not None for g in growth.values())
    mid = float(np.median(list(growth.values())))
    with Engine(s) as engine:
        for lo, hi in ((mid, None), (None, mid), (0.0185, 0.02), (0.05, None)):
            keep = {a for a, g in growth.items() if (lo is None or g >= lo) and (hi is None or g <= hi)}
            assert 0 < len(keep) < N
            f = Filters.make(metrics=MetricBounds(min_growth=lo, max_growth=hi))
            assert {h.influencer_id for h in engine.match_brand(BRAND, k=N, filters=f)} == keep, (lo, hi)
        f = Filters.make(metrics=MetricBounds(no_flags=True))
        assert JUMPER not in {h.influencer_id for h in engine.match_brand(BRAND, k=N, filters=f)}
        run_export(engine, ExportSpec((BRAND,), N, "jsonl", Filters()), tmp_path / "s.jsonl")
    rows = read_rows(tmp_path / "s.jsonl", "jsonl")
    assert len(rows) == N and all(r["follower_growth"] == pytest.approx(growth[r["influencer_id"]]) for r in rows)


def test_growth_filters_in_the_cli_and_api(site: dict, monkeypatch: pytest.MonkeyPatch, capsys) -> None:  # type: ignore[no-untyped-def]
    s: Settings = site["settings"]
    monkeypatch.setenv("CONGRUENCE_HOME", str(s.home))
    monkeypatch.setenv("DATABASE_URL", str(s.database_url))
    code, out, err = run(capsys, "match", "--brand", BRAND, "-k", str(N), "--min-growth", "5%", "--json")
    assert code == 0, err
    assert [d["influencer_id"] for d in json.loads(out)["data"]] == [JUMPER]
    code, _, err = run(capsys, "match", "--brand", BRAND, "--min-growth", "3%", "--max-growth", "1%")
    assert code == 1 and "--min-growth (0.03) is greater than the maximum growth (0.01)" in err
    code, _, err = run(capsys, "match", "--brand", BRAND, "--min-growth=-150%")
    assert code == 1 and "--min-growth must be a number of at least -1, got -1.5" in err
    r = httpx.post(site["url"] + "/v1/match", json={"brand_id": BRAND, "k": N, "max_growth": 0.05}, timeout=60)
    assert r.status_code == 200 and len(r.json()["data"]) == N - 1 and JUMPER not in r.text
    r = httpx.get(site["url"] + f"/v1/influencers/{JUMPER}/similar", params={"k": N, "min_growth": 0.05}, timeout=60)
    assert r.status_code == 200 and r.json()["data"] == []
    r = httpx.get(site["url"] + f"/v1/accounts/{JUMPER}", timeout=60)
    assert r.status_code == 200
    hist = [(p["followers"], p["source"], p["last_seen"]) for p in r.json()["follower_history"]]
    assert hist == [(20_000, "given", "2026-02-01T00:00:00Z"), (30_000, "given", None)]


def test_account_page_plots_followers_over_time(site: dict, page) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    page.goto(site["url"] + f"/account?id={JUMPER}")
    page.wait_for_selector("#followers-plot circle")
    assert page.locator("#followers-plot circle").count() == 3  # January and February (seen again), March
    assert page.locator("#followers-plot polyline.trend").count() == 1
    last = page.locator("#followers-plot circle title").last.text_content()
    assert last == "2026-03-01: 30,000 followers (dated by the data)"
    assert page.locator("#followers-caption").inner_text() == "Followers over time (2 counts, 3 sightings)"
    tile = page.locator(".tile", has_text="Follower growth")
    assert tile.locator(".value").inner_text().startswith("+") and page.locator("#flags li.auth-flags").count() == 1
    assert "growth spike: followers rose 50 %" in page.locator("#flags li.auth-flags").inner_text()


def test_search_page_growth_filter(site: dict, page) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    page.goto(site["url"] + "/")
    page.wait_for_function("document.querySelectorAll('#brand-list option').length > 0")
    page.fill("#brand", BRAND)
    page.uncheck("#micro")
    page.fill("#min-growth", "5")  # percent a month
    page.click("#search-btn")
    page.wait_for_function("document.querySelectorAll('.card').length === 1")
    card = page.locator(f'.card[data-influencer="{JUMPER}"]')
    assert "/month followers" in card.locator(".metrics").inner_text()
    page.fill("#min-growth", "")
    page.fill("#max-growth", "5")
    page.click("#search-btn")
    page.wait_for_function(f"document.querySelectorAll('.card').length === {N - 1}")
    assert page.locator(f'.card[data-influencer="{JUMPER}"]').count() == 0


def test_reingest_adds_nothing_an_undated_count_is_the_ingest_time_and_delete_drops_it(
    env: Settings, small_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = Path(shutil.copytree(small_corpus, tmp_path / "corpus"))
    _write_accounts(folder, {JUMPER: 12_000}, DATES[0])
    assert ingest(folder, env).follower_snapshots == 24  # every account with a count: 18 influencers, 6 brands
    code, _, err = run(capsys, "match", "--brand", BRAND, "--min-growth", "1%")
    assert code == 1 and "--min-growth passes nobody yet: no influencer has a known follower growth" in err
    assert ingest(folder, env).follower_snapshots == 0  # the same files again
    _write_accounts(folder, {JUMPER: 12_500}, None)
    before = datetime.now(UTC)
    assert ingest(folder, env).follower_snapshots == 1
    code, out, _ = run(capsys, "account", JUMPER, "--json")
    hist = json.loads(out)["follower_history"]
    got = [(p["followers"], p["source"], p["last_seen"]) for p in hist]
    assert got == [(12_000, "given", None), (12_500, "ingest", None)]
    assert datetime.fromisoformat(hist[1]["at"]) >= before
    assert ingest(folder, env).follower_snapshots == 0  # undated, unchanged: nothing new, only seen again
    code, out, _ = run(capsys, "account", JUMPER, "--json")
    again = json.loads(out)["follower_history"][1]
    assert again["at"] == hist[1]["at"]
    assert datetime.fromisoformat(again["last_seen"]) > datetime.fromisoformat(again["at"])
    # an older file, read after: kept in date order, and the account keeps its newest count
    _write_accounts(folder, {JUMPER: 11_000}, "2025-06-01")
    assert ingest(folder, env).follower_snapshots == 1
    code, out, _ = run(capsys, "account", JUMPER, "--json")
    acc = json.loads(out)
    assert [p["followers"] for p in acc["follower_history"]] == [11_000, 12_000, 12_500] and acc["followers"] == 12_500
    # a corrected count at a date already held replaces it
    _write_accounts(folder, {JUMPER: 11_100}, "2025-06-01")
    assert ingest(folder, env).follower_snapshots == 1
    code, out, _ = run(capsys, "account", JUMPER, "--json")
    assert [p["followers"] for p in json.loads(out)["follower_history"]] == [11_100, 12_000, 12_500]
    code, _, err = run(capsys, "delete", JUMPER)
    assert code == 0, err
    with Store.open(env) as store:
        n = store.conn.execute("SELECT count(*) FROM follower_snapshots WHERE account_id = %s", (JUMPER,)).fetchone()
    assert n == (0,)


def test_instaloader_counts_are_dated_by_the_profile_file_else_the_newest_post(tmp_path: Path) -> None:
    from congruence.indexer.formats.instaloader import read_instaloader

    from .instaloader_files import post_node, profile_node, save_post, save_profile

    t0 = 1_700_000_000
    anna = save_profile(tmp_path, profile_node("anna", 1, 12_000))
    ben = save_profile(tmp_path, profile_node("ben", 2, 3_000))
    for who, uid in (("anna", 1), ("ben", 2)):
        for d in range(3):
            save_post(tmp_path, post_node(f"{who}{d}", who, uid, t0 + d * int(DAY)))
    saved = t0 + 10 * int(DAY)
    os.utime(anna, (saved, saved))
    os.utime(ben, (0, 0))  # an archive that dropped the dates: 1970, before Instagram
    c = read_instaloader(tmp_path)
    assert c.errors == []
    got = {a.id: (a.extra["followers_at"], a.extra["followers_at_source"]) for a in c.accounts}
    iso = lambda t: datetime.fromtimestamp(t, UTC).isoformat()  # noqa: E731
    assert got == {"anna": (iso(saved), "file"), "ben": (iso(t0 + 2 * int(DAY)), "posts")}
    assert [dated(a) for a in c.accounts] == [
        ("anna", 12_000, iso(saved), "file"),
        ("ben", 3_000, iso(t0 + 2 * int(DAY)), "posts"),
    ]


def _d(day: int) -> datetime:
    return datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=day)


@pytest.mark.parametrize("order", [(0, 1, 2, 3), (3, 2, 1, 0), (2, 0, 3, 1)])
def test_merge_keeps_date_order_whatever_order_the_counts_come_in(order: tuple[int, ...]) -> None:
    points = [(_d(0), 100), (_d(30), 100), (_d(60), 150), (_d(90), 150)]
    runs: list[Snapshot] = []
    for i in order:
        runs = merge(runs, points[i][0], points[i][1], "given")
    assert runs == [Snapshot(_d(0), 100, "given", _d(30)), Snapshot(_d(60), 150, "given", _d(90))]


def test_merge_corrects_a_date_and_splits_a_run_a_new_count_lands_in() -> None:
    runs = [Snapshot(_d(0), 100, "given", _d(60))]
    assert merge(runs, _d(0), 90, "file") == [Snapshot(_d(0), 90, "file"), Snapshot(_d(60), 100, "given")]
    assert merge(runs, _d(30), 120, "ingest") == [
        Snapshot(_d(0), 100, "given"),
        Snapshot(_d(30), 120, "ingest"),
        Snapshot(_d(60), 100, "given"),
    ]
    assert merge(runs, _d(90), 100, "ingest") == [Snapshot(_d(0), 100, "given", _d(90))]


def test_a_table_column_dates_the_counts(tmp_path: Path) -> None:
    from congruence.indexer.formats.tables import read_tables

    (tmp_path / "posts.csv").write_text("id,account_id,caption\np1,anna,hello\np2,ben,hi\n")
    (tmp_path / "accounts.csv").write_text(
        "id,followers,followers_at\nanna,1200,2026-02-01\nben,900,\ncarl,5,yesterday\n"
    )
    c = read_tables(tmp_path / "posts.csv", tmp_path / "accounts.csv")
    assert [dated(a) for a in c.accounts] == [
        ("anna", 1200, "2026-02-01T00:00:00+00:00", "given"),
        ("ben", 900, None, "ingest"),
    ]
    (err,) = c.errors
    assert (err.file, err.line) == ("accounts.csv", 4) and "column 'followers_at' is not a timestamp" in err.reason
