"""bench.engagement_ablations on small synthetic data: every variant runs and ranks, the
source's outcomes are read by shortcode, the time gap's columns are hand-computed."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from bench.engagement_ablations import (
    DAY,
    DIAGNOSTICS,
    VARIANTS,
    Outcomes,
    finetuned,
    make_split,
    read_outcomes,
    rows,
    run,
    time_gap,
)
from congruence.engagement.labels import pairwise_accuracy
from tests.test_engagement_ensemble import _data


def test_read_outcomes_first_row_wins_and_dirty_values_are_unknown(tmp_path: Path) -> None:
    src = tmp_path / "posts.jsonl.gz"
    lines = [
        {"shortcode": "A", "ts": 100, "comments": 3, "category": "fasion"},
        {"shortcode": "A", "ts": 999, "comments": 9, "category": "food"},
        {"shortcode": "B", "ts": None, "comments": -1, "category": "by"},
        {"shortcode": "C", "ts": True, "comments": "7", "category": None},
    ]
    with gzip.open(src, "wt", encoding="utf-8") as f:
        f.write("".join(json.dumps(r) + "\n" for r in lines))
    out = read_outcomes(src, ["B", "A", "C", "missing"])
    np.testing.assert_array_equal(out.ts[[1]], [100.0])
    assert np.isnan(out.ts[[0, 2, 3]]).all()
    np.testing.assert_array_equal(out.comments, [0.0, 3.0, 0.0, 0.0])
    assert list(out.category) == ["", "fashion", "", ""]


def test_time_gap_hand_computed() -> None:
    ts = np.array([0.0, 10 * DAY, np.nan])
    gap = time_gap(ts, np.array([1, 0, 2]), np.array([0, 1, 0]))
    lg = np.log1p(10)
    np.testing.assert_allclose(gap, [[1, lg, lg**2 / 10], [-1, -lg, -(lg**2) / 10], [0, 0, 0]])


def test_every_variant_ranks_held_out_posts() -> None:
    data = _data(n_accounts=100)
    rng = np.random.default_rng(1)
    n = len(data)
    # posting times that say nothing of likes; comments that follow them; two categories
    out = Outcomes(
        ts=rng.uniform(0, 400 * DAY, n),
        comments=np.round(data.likes / 50),
        category=np.where(data.groups % 2 == 0, "food", "travel"),
        caption=[""] * n,
    )
    acc = run(data, out, [0, 1], 1e-3, {**VARIANTS, **DIAGNOSTICS})
    assert set(acc) == set(VARIANTS) | set(DIAGNOSTICS) and all(len(v) == 2 for v in acc.values())
    # likes follow the hashtag count: every variant that reads the inputs finds it
    for name in [*VARIANTS, "inputs + posting time (reads posting time)"]:
        assert min(acc[name]) > 0.8, (name, acc[name])
    # random posting times rank no better than chance
    assert np.mean(acc["newer post wins (reads posting time)"]) == pytest.approx(0.5, abs=0.12)
    table = rows(acc)
    assert table[0]["variant"] == "product linear" and table[0]["vs product"] == 0.0


def test_finetuned_caption_encoder_learns_a_caption_word() -> None:
    # the real packaged all-MiniLM-L6-v2, fine-tuned on captions where "sunset" wins every pair;
    # the other inputs carry nothing (the hashtags were taken out)
    data = _data(n_accounts=24, per=2)
    n = len(data)
    data.features.hand[:] = 0
    win = np.zeros(n, bool)
    for a in range(24):
        r = np.flatnonzero(data.groups == a)
        win[r[a % 2]] = True
    data.likes[:] = np.where(win, 200.0, 100.0)
    out = Outcomes(
        ts=np.zeros(n),
        comments=np.zeros(n),
        category=np.full(n, ""),
        caption=[("golden sunset over the bay" if w else "my desk this morning") for w in win],
    )
    split = make_split(data, 0)
    pred = finetuned(epochs=3, batch_accounts=8)(data, out, split, 0.0)
    acc, pairs = pairwise_accuracy(pred[split.test], data.likes[split.test], data.groups[split.test])
    assert pairs >= 4 and acc == 1.0
    untouched = np.setdiff1d(np.arange(n), split.test)
    assert not pred[untouched].any()  # only the held-out posts are scored
