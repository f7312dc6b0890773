"""The feedback target on heads trained with other seeds (``feedback-seeds``).

``bench/feedback.py`` measures the simulated user on one head, the bench home's. The ratio
it reports moves with the head: this trains one product head per seed in a copy of that
home (``feedback-home-seed<N>``, the embedded server stopped before the copy, kept and reused
while the corpus is the same) and measures, on each, the target row (head, benchmark
candidates, brands with first-list recall@10 < 0.5, default weights), as the product runs
it, without the added-up dislikes (``FeedbackParams.accumulate`` 0), without the separation
(``separate`` 0), and with the closest-example terms in the head's tower alone
(``like_content`` and ``dislike_content`` 0 too: no pooled space); and the ceiling: the most
40 shown can hold when the first 10 are the list's own.
"""

from __future__ import annotations

import math
import os
import shutil
import statistics
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.common import Row, Section, Table
from bench.feedback import (
    FeedbackConfig,
    benchmark_candidates,
    candidate_ranker,
    ensure_head,
    per_brand,
    prepare,
    train_head,
    truth_of,
)
from bench.ranking import cli, skipped
from congruence.core.settings import load_settings
from congruence.search.engine import Engine
from congruence.search.feedback import PARAMS
from congruence.store.embedded_pg import stop_embedded

SEEDS, QUICK_SEEDS = (1, 2, 3, 4, 5, 6), (1,)
MARKER = "bench-corpus.json"  # the corpus a home holds (bench.ranking.sync_store)
SEEDED = "bench-seed.txt"  # written once the seed's head is trained and in service
PRODUCT = f"feedback {PARAMS.like_weight:g}/{PARAMS.dislike_weight:g}"


def copy_home(src: Path, dst: Path) -> None:
    """``cp -a``: the files and their owners (the server runs as its own user when we are root)."""
    shutil.copytree(src, dst, symlinks=True)
    if os.geteuid() != 0:
        return
    for root, dirs, files in os.walk(dst):
        for path in (root, *(os.path.join(root, n) for n in dirs + files)):
            st = os.lstat(src / os.path.relpath(path, dst))
            os.lchown(path, st.st_uid, st.st_gid)


def seed_home(corpus: Path, home: Path, seed: int, quick: bool) -> Path:
    """A copy of ``home`` serving a head trained with ``seed``: reused while it holds the same
    corpus and its head was trained (``SEEDED`` says which)."""
    out = home.with_name(f"{home.name}-seed{seed}")
    if not ((out / MARKER).is_file() and (out / MARKER).read_bytes() == (home / MARKER).read_bytes()):
        shutil.rmtree(out, ignore_errors=True)
        stop_embedded(home / "pg")  # a copy of a running server's folder would reach that server
        copy_home(home, out)
    if not (out / SEEDED).is_file():
        train_head(corpus, out, quick, seed)
        (out / SEEDED).write_text(f"{seed}\n", encoding="utf-8")
    return out


VARIANTS: dict[str, dict[str, Any]] = {  # fields of the product's FeedbackParams to change
    "product": {},
    "without added-up dislikes": {"accumulate": 0.0},
    "without separation": {"separate": 0.0},
    "tower only": {"like_content": 0.0, "dislike_content": 0.0, "separate": 0.0},
}


def target_row(
    home: Path, truth: dict[str, set[str]], allowed: set[str], cfg: FeedbackConfig, variant: str
) -> dict[str, Any]:
    settings = load_settings({"CONGRUENCE_HOME": str(home)})
    with Engine(settings) as engine:
        rows = per_brand(
            candidate_ranker(engine, allowed), truth, replace(cfg, params=replace(PARAMS, **VARIANTS[variant]))
        )
    hard = [r for r in rows if r["recall@10"] < cfg.hard]
    reading, found = (sum(r[k][-1] for r in hard) for k in ("reading", PRODUCT))
    shown = cfg.shown * cfg.rounds
    ceiling = sum(r["reading"][0] + min(shown, r["partners"] - r["reading"][0]) for r in hard)
    return {"hard brands": len(hard), "reading@40": reading, "feedback": found, "ceiling": ceiling}


def run(quick: bool) -> Section:
    cfg = FeedbackConfig(quick=quick, weights=((PARAMS.like_weight, PARAMS.dislike_weight),))
    prepared = prepare(quick)
    if isinstance(prepared, str):
        return skipped("feedback-seeds", prepared)
    corpus, home = prepared
    truth = truth_of(corpus, quick)
    allowed = benchmark_candidates(corpus, set(truth))
    ensure_head(corpus, home, quick)
    rows: list[Row] = []
    xs: list[float] = []
    towers: list[float] = []
    apart: list[float] = []
    ceilings: list[float] = []
    for seed in (None, *(QUICK_SEEDS if quick else SEEDS)):
        h = home if seed is None else seed_home(corpus, home, seed, quick)
        head = cli(["status", "--json"], h, 600).doc["models"]["head"]
        now, before, unseparated, tower = (target_row(h, truth, allowed, cfg, v) for v in VARIANTS)
        xs.append(now["feedback"] / now["reading@40"])
        towers.append(tower["feedback"] / tower["reading@40"])
        apart.append(unseparated["feedback"] / unseparated["reading@40"])
        ceilings.append(now["ceiling"] / now["reading@40"])
        rows.append(
            {
                "head": "bench's (default seed)" if seed is None else f"seed {seed}",
                "version": str(head),
                **now,
                "x": f"{xs[-1]:.3f}",
                "x without added-up dislikes": f"{before['feedback'] / before['reading@40']:.3f}",
                "without separation": unseparated["feedback"],
                "x without separation": f"{apart[-1]:.3f}",
                "tower only": tower["feedback"],
                "x tower only": f"{towers[-1]:.3f}",
                "ceiling x": f"{ceilings[-1]:.3f}",
            }
        )
        stop_embedded(h / "pg")
    total = {
        k: sum(int(r[k] or 0) for r in rows)
        for k in ("reading@40", "feedback", "without separation", "tower only", "ceiling")
    }
    summary: list[Row] = [
        {
            "over heads": "pooled (sums)",
            "x": f"{total['feedback'] / total['reading@40']:.4f}",
            "found": total["feedback"],
            f"{cfg.target:g}x needs": math.ceil(cfg.target * total["reading@40"]),
            "x without separation": f"{total['without separation'] / total['reading@40']:.4f}",
            "x tower only": f"{total['tower only'] / total['reading@40']:.4f}",
            "ceiling x": f"{total['ceiling'] / total['reading@40']:.3f}",
        },
        {
            "over heads": "median",
            "x": f"{statistics.median(xs):.3f}",
            "found": None,
            f"{cfg.target:g}x needs": None,
            "x without separation": f"{statistics.median(apart):.3f}",
            "x tower only": f"{statistics.median(towers):.3f}",
            "ceiling x": f"{statistics.median(ceilings):.3f}",
        },
        {
            "over heads": f"heads at >= {cfg.target:g}",
            "x": sum(x >= cfg.target for x in xs),
            "found": None,
            f"{cfg.target:g}x needs": None,
            "x without separation": sum(x >= cfg.target for x in apart),
            "x tower only": sum(x >= cfg.target for x in towers),
            "ceiling x": None,
        },
    ]
    section = Section(
        "feedback-seeds",
        [
            Table(
                "feedback target row per head (head, benchmark candidates, recall@10 < 0.5, partners in 40 shown)", rows
            ),
            Table("over the heads", summary),
        ],
    )
    section.details.update({"rows": rows, "summary": summary, "targets_met": None})
    section.notes.append(
        "each head is a `congruence train --variants product --seed N` in a copy of the feedback "
        "home; 'without added-up dislikes': FeedbackParams.accumulate = 0 (search/feedback.py); 'without "
        "separation': its separate = 0; 'tower only': its like_content = dislike_content = separate = 0 (the "
        "closest liked and disliked in the head's tower alone, as before the pooled space was mixed "
        "in)"
    )
    return section
