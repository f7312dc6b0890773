"""Learning the fusion of content and collaborative evidence (``training.fusion_model``) on training
brands, in simulated warm starts (docs/collaborations.md).

``congruence train`` reserves some training brands for it (``fusion_brands``): the head never
trains on them, so the head's scores of their partners are what the head gives a brand it has
not seen, as in service. For each reserved brand, several seeded splits of its partners (its
matches and the creators who tagged it) into known and hidden make lists as ``retrieve`` makes
them: the content top N and the graph's top ``COLLAB_CANDIDATES`` among everyone but the known
partners. A hidden partner's edges to the brand itself weigh nothing (``CollabSignal.weights``)
and leave its propensity. LightGBM's ``lambdarank`` learns to put the hidden ones first.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping, Sequence

import numpy as np

from congruence.store.collab_index import CollabIndex, load_collabs
from congruence.store.collab_signal import COLLAB_CANDIDATES, CollabSignal, Partners, partner_rows
from congruence.store.postsets import PostSets
from congruence.store.records import Store
from congruence.store.rows import AccountTable
from congruence.training.fusion_model import Fusion, query_features
from congruence.training.model import CongruenceHead

logger = logging.getLogger(__name__)
MIN_PARTNERS = 6  # a brand with fewer cannot be split into known and hidden partners usefully
FUSION_FRACTION = 0.25  # of the training brands with enough partners, reserved for the fusion
SPLITS = 3  # simulated warm starts per reserved brand
PARAMS = {
    "objective": "lambdarank",
    "metric": "ndcg",
    "eval_at": [10, 50],
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_data_in_leaf": 20,
    "feature_fraction": 1.0,
    "lambdarank_truncation_level": 100,
    "deterministic": True,
    "force_row_wise": True,
    "num_threads": 2,
    "verbose": -1,
}
ROUNDS = 200

# (brand id, influencer table rows) -> content scores of those rows for that brand
ContentScores = Callable[[str, np.ndarray], np.ndarray]


def fusion_brands(partners: dict[str, int], seed: int, fraction: float = FUSION_FRACTION) -> list[str]:
    """A seeded ``fraction`` of the brands with at least ``MIN_PARTNERS`` partners (brand -> how
    many), sorted; none when fewer than 4 would be reserved (too few lists to learn from)."""
    ok = sorted(b for b, n in partners.items() if n >= MIN_PARTNERS)
    n = round(fraction * len(ok))
    if n < 4:
        return []
    order = np.random.default_rng([seed, 11]).permutation(len(ok))
    return sorted(ok[i] for i in order[:n])


def fit_fusion(
    ci: CollabIndex,
    table: AccountTable,
    brands: Sequence[str],
    own_handles: dict[str, tuple[str, ...]],
    matches: Mapping[str, Collection[str]],
    content: ContentScores,
    candidates: int,
    seed: int = 0,
) -> Fusion | None:
    """The fusion learned on ``brands`` (their ``own_handles`` and ``matches``: influencer ids),
    or None when no brand gives a list with a hidden partner in it."""
    import lightgbm

    signal = CollabSignal(ci)
    row_of = {a: i for i, a in enumerate(table.ids)}
    xs, ys, groups = [], [], []
    used = 0
    everyone = np.arange(len(table.ids))
    for bi, b in enumerate(brands):
        own = own_handles.get(b, ())
        partners = np.union1d(partner_rows(ci, own), [row_of[a] for a in matches.get(b, ()) if a in row_of])
        if len(partners) < MIN_PARTNERS:
            continue
        scores = np.asarray(content(b, everyone), np.float64)
        own_codes = ci.codes(own)
        touches = np.zeros(len(table.ids))  # edges to the brand itself, per row
        if len(own_codes):
            hit = np.isin(ci.handle, own_codes) & ci.edge_mask(("tag", "sponsor", "match"))
            np.add.at(touches, ci.rows[hit], 1)
        touches = np.minimum(touches, 1)  # a match and a tag of one brand are one handle
        used += 1
        for r in range(SPLITS):
            order = np.random.default_rng([seed, 12, bi, r]).permutation(len(partners))
            half = len(partners) // 2
            known, hidden = partners[order[:half]], partners[order[half:]]
            p = Partners(known, own)
            w = signal.weights(p)
            pool = np.ones(len(table.ids), bool)
            pool[known] = False
            top = np.flatnonzero(pool)[np.argsort(-scores[pool], kind="stable")[:candidates]]
            rows = np.union1d(top, signal.best(w, COLLAB_CANDIDATES, pool))
            y = np.isin(rows, hidden)
            if not y.any():
                continue
            discount = np.where(np.isin(rows, hidden), touches[rows], 0)
            xs.append(query_features(signal, table, p, rows, scores[rows], w, discount))
            ys.append(y.astype(np.int32))
            groups.append(len(rows))
    if not groups:
        return None
    data = lightgbm.Dataset(np.concatenate(xs), np.concatenate(ys), group=groups, free_raw_data=True)
    booster = lightgbm.train({**PARAMS, "seed": seed}, data, num_boost_round=ROUNDS)
    logger.info("fusion learned on %d brands, %d lists", used, len(groups))
    return Fusion(booster.model_to_string(), used, len(groups))


class Graph:
    """What the fusion learns from in a store: the influencer table, its collaboration graph and
    each brand's own handles (normal form of its handle and of its id)."""

    def __init__(self, table: AccountTable, ci: CollabIndex, own: dict[str, tuple[str, ...]]):
        self.table, self.ci, self.own = table, ci, own

    @classmethod
    def load(cls, store: Store) -> Graph | None:
        """The store's graph, or None when no post names a handle (tag or sponsor): then there
        is no collaborative evidence to learn from, and the head trains on every brand."""
        has = store.conn.execute("SELECT EXISTS (SELECT 1 FROM collaborations WHERE kind <> 'mention')").fetchone()
        if not has or not has[0]:
            return None
        table = store.account_table("influencer")
        own = {
            b: tuple(dict.fromkeys((h, i)))
            for b, h, i in store.conn.execute(
                "SELECT id, collab_handle(handle), collab_handle(id) FROM accounts WHERE kind = 'brand'"
            )
        }
        return cls(table, load_collabs(store, table), own)

    def partner_counts(self, matches: Sequence[tuple[str, str]]) -> dict[str, int]:
        """Brand -> how many partners it has (matches, and creators who tagged or were sponsored by it)."""
        by_brand: dict[str, set[int]] = {}
        row_of = {a: i for i, a in enumerate(self.table.ids)}
        for b, a in matches:
            if a in row_of:
                by_brand.setdefault(b, set()).add(row_of[a])
        for b, own in self.own.items():
            by_brand.setdefault(b, set()).update(partner_rows(self.ci, own).tolist())
        return {b: len(s) for b, s in by_brand.items()}

    def fit(
        self,
        postsets: PostSets,
        head: CongruenceHead,
        brands: Sequence[str],
        matches: Sequence[tuple[str, str]],
        candidates: int,
        seed: int,
    ) -> Fusion | None:
        """The fusion learned on ``brands`` with ``head``'s content scores."""
        from congruence.training.evaluate import head_scorer

        score = head_scorer(head)
        ps_row = {a: i for i, a in enumerate(postsets.account_ids)}
        cand = np.array([ps_row.get(a, -1) for a in self.table.ids], np.int64)
        have = cand >= 0

        def content(brand: str, rows: np.ndarray) -> np.ndarray:
            out = np.full(len(rows), -np.inf)
            ok = rows[have[rows]]
            b = ps_row.get(brand)
            if b is not None and len(ok):
                out[have[rows]] = score(postsets, np.array([b]), cand[ok])[0]
            return out

        by_brand: dict[str, list[str]] = {}
        for b, a in matches:
            by_brand.setdefault(b, []).append(a)
        return fit_fusion(self.ci, self.table, brands, self.own, by_brand, content, candidates, seed)
