"""Does brand–influencer congruence go with engagement? (after Elwood, Rozza, Colleoni, Miglietta 2022)

For every post of an influencer (with two or more liked posts) that tags an account the
store has a vector for, or is a paid partnership that does: regress the post's engagement
(likes standardised within its account, the engagement model's label) on the congruence
of the tagged account and the influencer, with follower count and post features as
controls (ordinary least squares, statsmodels; standard errors clustered by account, as
posts of one account are not independent).

Brands: tagged accounts of kind ``brand``; tagged accounts of kind ``influencer`` stand in
for brands where a corpus has no brand accounts (both are counted in the result).
Congruence: the cosine of the two accounts' vectors in the space in service — the trained
congruence head's ('head:VERSION') when one is active, else the pooled embeddings — averaged
over the post's tagged accounts.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from congruence.core.errors import InvalidInput
from congruence.core.settings import Settings
from congruence.core.vectors import l2_normalize
from congruence.engagement.labels import engagement_z
from congruence.store.records import Store
from congruence.store.vectors import VectorStore
from congruence.training.lifecycle import HEAD, active_version

logger = logging.getLogger(__name__)
CONTROLS = ("log_followers", "log_caption_chars", "hashtags", "mentions", "tagged", "sponsored")
_HASHTAG = re.compile(r"#\w+")
_MENTION = re.compile(r"@[\w.]+")


@dataclass(frozen=True)
class EffectResult:
    """coef: change in engagement (robust z) per unit of congruence (cosine); coef_sd: per
    standard deviation of congruence; ci: 95 % interval of coef."""

    coef: float
    ci: tuple[float, float]
    p_value: float
    coef_sd: float
    r2: float
    n: int
    n_accounts: int
    controls: tuple[str, ...]
    reading: str
    space: str = ""
    brand_kinds: dict[str, int] | None = None
    stand_in: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "coefficient": self.coef,
            "ci95": list(self.ci),
            "p_value": self.p_value,
            "coefficient_per_sd": self.coef_sd,
            "r2": self.r2,
            "n": self.n,
            "n_accounts": self.n_accounts,
            "controls": list(self.controls),
            "reading": self.reading,
            "space": self.space,
            "tagged_kinds": self.brand_kinds or {},
            "brands": self.stand_in,
            "model": "OLS, engagement_z ~ congruence + controls, SE clustered by account",
        }


def fit_effect(
    y: np.ndarray, congruence: np.ndarray, controls: dict[str, np.ndarray], groups: np.ndarray, alpha: float = 0.05
) -> EffectResult:
    """OLS of ``y`` on ``congruence`` and ``controls`` (constant columns dropped), SE clustered by ``groups``."""
    import statsmodels.api as sm

    n = len(y)
    kept = {k: np.asarray(v, np.float64) for k, v in controls.items() if np.ptp(np.asarray(v, np.float64)) > 0}
    if n < len(kept) + 3:
        raise InvalidInput(f"too few posts for the regression: {n} with {len(kept)} controls")
    x = np.column_stack([np.ones(n), np.asarray(congruence, np.float64), *kept.values()])
    _, g = np.unique(np.asarray(groups), return_inverse=True)
    clustered = len(np.unique(g)) > 1
    fit = sm.OLS(np.asarray(y, np.float64), x).fit(
        cov_type="cluster" if clustered else "nonrobust", cov_kwds={"groups": g} if clustered else None
    )
    coef, p = float(fit.params[1]), float(fit.pvalues[1])
    lo, hi = (float(v) for v in np.asarray(fit.conf_int(alpha))[1])
    sd = float(np.std(congruence))
    reading = _reading(coef * sd, lo * sd, hi * sd, p, n, alpha)
    return EffectResult(
        round(coef, 4),
        (round(lo, 4), round(hi, 4)),
        round(p, 4),
        round(coef * sd, 4),
        round(float(fit.rsquared), 4),
        n,
        len(np.unique(g)),
        tuple(kept),
        reading,
    )


def _reading(b_sd: float, lo: float, hi: float, p: float, n: int, alpha: float) -> str:
    span = f"{b_sd:+.3f} (95% CI {lo:+.3f} to {hi:+.3f}, p = {p:.3g}, n = {n} posts)"
    if p < alpha:
        way = "more" if b_sd > 0 else "fewer"
        return (
            f"Posts tagging a brand that is more congruent with the influencer get {way} likes than that "
            f"account's usual: one standard deviation more congruence goes with {span} in within-account "
            "engagement (robust z), holding followers and post features fixed. An association, not a cause."
        )
    return (
        f"No significant association between brand congruence and engagement: one standard deviation "
        f"more congruence goes with {span} in within-account engagement (robust z). The data cannot tell a "
        "small effect either way from none."
    )


def _space(store: Store) -> str:
    version = active_version(store, HEAD)
    return f"head:{version}" if version else "pooled"


def post_controls(
    captions: list[str], followers: np.ndarray, n_tagged: np.ndarray, sponsored: np.ndarray
) -> dict[str, np.ndarray]:
    """The control columns of CONTROLS for each post."""
    return {
        "log_followers": np.log1p(np.maximum(followers, 0)),
        "log_caption_chars": np.log1p([len(c) for c in captions]),
        "hashtags": np.array([len(_HASHTAG.findall(c)) for c in captions], np.float64),
        "mentions": np.array([len(_MENTION.findall(c)) for c in captions], np.float64),
        "tagged": np.asarray(n_tagged, np.float64),
        "sponsored": np.asarray(sponsored, np.float64),
    }


def analyze_engagement(settings: Settings) -> EffectResult:
    """The regression over the store's posts; see the module docstring for what is measured."""
    with Store.open(settings) as store:
        space = _space(store)
        rows = store.conn.execute(
            "SELECT p.account_id, p.likes, a.followers, p.caption, p.tagged, p.sponsored FROM posts p"
            " JOIN accounts a ON a.id = p.account_id WHERE a.kind = 'influencer' AND p.likes IS NOT NULL"
            " ORDER BY a.seq, p.ts NULLS LAST, p.id"
        ).fetchall()
        tagged_ids = sorted({t for r in rows for t in r[4]} | {r[0] for r in rows})
        _, ids, vecs = VectorStore(store).account_vectors(space, ids=tagged_ids)
        kinds = store.account_kinds(tagged_ids)
    vec = dict(zip(ids, l2_normalize(vecs), strict=True))
    index = {a: k for k, a in enumerate(dict.fromkeys(r[0] for r in rows))}
    groups = np.array([index[r[0]] for r in rows], np.int64)
    counts = np.bincount(groups, minlength=len(index))
    z = engagement_z(np.array([r[1] for r in rows], np.float64), groups)
    keep, cong, used = [], [], {"brand": 0, "influencer": 0}
    for i, (acc, _, fol, _, tagged, _) in enumerate(rows):
        brands = [t for t in tagged if t != acc and t in vec]
        if counts[index[acc]] < 2 or acc not in vec or fol is None or not brands:
            continue
        keep.append(i)
        cong.append(float(np.mean([vec[acc] @ vec[t] for t in brands])))
        for t in brands:
            used[kinds.get(t, "influencer")] += 1
    if len(keep) < 10:
        tagging = sum(1 for r in rows if r[4])
        raise InvalidInput(
            f"only {len(keep)} posts can enter the regression (at least 10 needed): it takes "
            f"posts that tag another account of the store with a vector (space {space!r}), by an "
            f"influencer with a vector, at least two posts and known followers; {tagging} of the "
            f"{len(rows)} influencer posts with likes tag any account at all"
        )
    sel = [rows[i] for i in keep]
    controls = post_controls(
        [r[3] for r in sel],
        np.array([r[2] for r in sel], np.float64),
        np.array([len(r[4]) for r in sel]),
        np.array([r[5] for r in sel], bool),
    )
    res = fit_effect(z[keep], np.array(cong), controls, groups[keep])
    stand_in = (
        "tagged brand accounts"
        if not used["influencer"]
        else "tagged accounts: brand accounts where tagged, other tagged accounts with posts in the store "
        "standing in for brands"
    )
    return EffectResult(**{**res.__dict__, "space": space, "brand_kinds": used, "stand_in": stand_in})
