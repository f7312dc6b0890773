"""The account metrics on the real Instagram posts (``../shared/data/instagram/posts.jsonl.gz``).

``python -m bench.account_metrics [--source FILE] [--plot docs/metrics_er_by_band.svg] [--json OUT]``

Runs the same functions ``congruence metrics`` runs after every ingest (``indexer.account_metrics``:
``figures`` and ``authenticity``) on the source's accounts and posts, without PostgreSQL or
encoders, and prints what docs/metrics.md reports: the dirty values and how they were handled,
the engagement rate by follower band, sponsored against organic posts, and how many accounts
each authenticity signal flags. With ``--plot`` it writes the engagement-rate-by-band figure.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from congruence.datasets.instagram_text import clean_category
from congruence.indexer.account_metrics.compute import N_LAST, figures, post_rates
from congruence.indexer.account_metrics.signals import BAND_NAMES, SIGNALS, authenticity, follower_band
from congruence.store.account_metrics import AccountArrays, PostArrays

SOURCE = Path(__file__).resolve().parents[2] / "shared" / "data" / "instagram" / "posts.jsonl.gz"


def _number(v: object) -> float:
    """A count as a float; NaN when missing or not a number (a bool is not a count)."""
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else float("nan")


def load(source: Path) -> tuple[AccountArrays, PostArrays, dict[str, int]]:
    """Accounts (followers from the account's newest post that gives them) and posts (a repeated
    shortcode dropped), and the dirty values counted. Negative counts become unknown (NaN), as
    do missing ones."""
    rows, seen = [], set()
    dirty: Counter[str] = Counter()
    with gzip.open(source, "rt", encoding="utf-8") as lines:
        for line in lines:
            r = json.loads(line)
            if r.get("shortcode") in seen:  # the same post twice: ingest refuses the repeat (a duplicate id)
                dirty["posts_duplicate"] += 1
                continue
            seen.add(r.get("shortcode"))
            rows.append(r)
    users = sorted({str(r["user"]) for r in rows})
    row_of = {u: i for i, u in enumerate(users)}
    followers = np.full(len(users), np.nan)
    newest = np.full(len(users), -np.inf)
    cats: list[Counter[str]] = [Counter() for _ in users]
    for r in rows:
        i, f, ts = row_of[str(r["user"])], _number(r.get("followers")), _number(r.get("ts"))
        cat = clean_category(r.get("category"))
        dirty["posts_category_missing"] += r.get("category") is None
        dirty["posts_category_misspelt_or_unknown"] += isinstance(r.get("category"), str) and cat != r["category"]
        if cat:
            cats[i][cat] += 1
        if np.isfinite(f) and (not np.isfinite(ts) or ts >= newest[i]):
            followers[i], newest[i] = f, ts if np.isfinite(ts) else newest[i]
    categories = [c.most_common(1)[0][0] if c else "" for c in cats]
    acc = AccountArrays(users, ["influencer"] * len(users), categories, followers)
    likes, comments = (np.array([_number(r.get(k)) for r in rows]) for k in ("likes", "comments"))
    for name, v in (("likes", likes), ("comments", comments)):
        dirty[f"posts_{name}_missing"] = int(np.isnan(v).sum())
        dirty[f"posts_{name}_negative"] = int((v < 0).sum())
        v[v < 0] = np.nan
    spons = np.array(
        [1 if r.get("sponsored") is True else 0 if r.get("sponsored") is False else -1 for r in rows], np.int8
    )
    posts = PostArrays(
        np.array([row_of[str(r["user"])] for r in rows], np.int64),
        np.array([_number(r.get("ts")) for r in rows]),
        likes,
        comments,
        spons,
        [str(r.get("shortcode")) for r in rows],
    )
    dirty["posts_time_missing"] = int(np.isnan(posts.ts).sum())
    dirty["posts_sponsorship_unknown"] = int((spons < 0).sum())
    dirty["accounts_followers_missing"] = int(np.isnan(followers).sum())
    dirty["accounts_followers_zero"] = int((followers == 0).sum())
    dirty["accounts_followers_negative"] = int((followers < 0).sum())
    dirty["accounts_category_unknown"] = sum(1 for c in categories if not c)
    return acc, posts, {"posts": len(rows) + dirty["posts_duplicate"], "accounts": len(users), **dict(dirty)}


def _quartiles(x: np.ndarray) -> list[float]:
    return [round(float(q), 5) for q in np.quantile(x, [0.25, 0.5, 0.75])] if len(x) else []


def by_band(acc: AccountArrays, er: np.ndarray, n_posts: np.ndarray, min_posts: int) -> list[dict[str, Any]]:
    """Per follower band: accounts with an ER over at least ``min_posts`` posts, ER quartiles."""
    band = follower_band(acc.followers)
    out = []
    for b, name in enumerate(BAND_NAMES):
        x = er[(band == b) & np.isfinite(er) & (n_posts >= min_posts)]
        out.append({"band": name, "accounts": int(len(x)), "er_q1_median_q3": _quartiles(x)})
    return out


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    rx, ry = (np.argsort(np.argsort(v)).astype(np.float64) for v in (x, y))
    return float(np.corrcoef(rx, ry)[0, 1])


def sponsored(acc: AccountArrays, posts: PostArrays, ratio: np.ndarray) -> dict[str, Any]:
    """Sponsored against organic: per-post ER pooled (all, and within each account's own
    posts), and the per-account ratio where an account has both."""
    rate = post_rates(acc, posts)
    ok = np.isfinite(rate)
    sp, org = ok & (posts.sponsored == 1), ok & (posts.sponsored == 0)
    has_sp = np.isin(posts.account, np.unique(posts.account[sp]))
    both = np.isfinite(ratio)
    return {
        "sponsored_posts": int(sp.sum()),
        "organic_posts": int(org.sum()),
        "post_er_median_sponsored": round(float(np.median(rate[sp])), 5),
        "post_er_median_organic": round(float(np.median(rate[org])), 5),
        "post_er_median_organic_of_sponsoring_accounts": round(float(np.median(rate[org & has_sp])), 5),
        "accounts_with_both": int(both.sum()),
        "account_ratio_q1_median_q3": [round(v, 3) for v in _quartiles(ratio[both])],
        "accounts_ratio_below_1": int((ratio[both] < 1).sum()),
    }


def analyse(source: Path) -> dict[str, Any]:
    acc, posts, dirty = load(source)
    f = figures(acc, posts, N_LAST)
    flags = authenticity(acc, posts, f.er, N_LAST)
    ok = np.isfinite(f.er) & (acc.followers > 0)
    multi = ok & (f.er_posts >= 2)
    flagged = {s: sum(1 for fl in flags if any(x.signal == s for x in fl)) for s in SIGNALS}
    return {
        "source": source.name,
        "last_n": N_LAST,
        "dirty": dirty,
        "accounts_with_er": int(ok.sum()),
        "er_by_band": by_band(acc, f.er, f.er_posts, 1),
        "er_by_band_2_posts": by_band(acc, f.er, f.er_posts, 2),
        "spearman_er_followers": round(spearman(f.er[ok], acc.followers[ok]), 3),
        "spearman_er_followers_2_posts": round(spearman(f.er[multi], acc.followers[multi]), 3),
        "sponsored": sponsored(acc, posts, f.sponsored_ratio),
        "flagged": flagged,
        "flagged_any": sum(1 for fl in flags if fl),
        "eligible": {
            "comment_like_ratio": int((f.er_posts >= 3).sum()),
            "like_spike": int((f.er_posts >= 5).sum()),
            "er_outlier": int(ok.sum()),
        },
    }


def plot(result: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("svg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.fonttype": "none", "font.size": 9, "svg.hashsalt": "congruence"})
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    for key, label, dx, color in (
        ("er_by_band", "every account (1+ posts)", -0.12, "#3b6ea8"),
        ("er_by_band_2_posts", "accounts with 2+ posts", 0.12, "#e8590c"),
    ):
        rows = [r for r in result[key] if r["accounts"]]
        x = np.array([BAND_NAMES.index(r["band"]) for r in rows]) + dx
        q1, med, q3 = (np.array([r["er_q1_median_q3"][i] for r in rows]) * 100 for i in range(3))
        ax.errorbar(x, med, yerr=[med - q1, q3 - med], fmt="o-", color=color, capsize=3, label=label)
    ax.set_xticks(range(len(BAND_NAMES)), BAND_NAMES)
    ax.set_yscale("log")
    ax.set_xlabel("followers")
    ax.set_ylabel("engagement rate (%), median and IQR")
    ax.set_title(f"Engagement rate by follower band, {result['accounts_with_er']:,} real Instagram accounts")
    ax.legend(frameon=False)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, metadata={"Date": None})
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.account_metrics", description=__doc__.split("\n")[0])
    p.add_argument("--source", type=Path, default=SOURCE)
    p.add_argument("--plot", type=Path, help="write the ER-by-band figure (SVG) here")
    p.add_argument("--json", type=Path, help="write the results here as well")
    args = p.parse_args(argv)
    if not args.source.exists():
        print(f"error: the real posts are not at {args.source} (../shared/data/instagram)", file=sys.stderr)
        return 1
    result = analyse(args.source)
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    if args.plot:
        plot(result, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
