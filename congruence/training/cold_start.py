"""Learning the cold-start blend (``training.category_blend``) in ``congruence train``, and the
blend as an evaluation scorer (the product's row ``head+category`` on held-out brands)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np

from congruence.store.postsets import PostSets
from congruence.training.category_blend import CategoryBlend, Content, blend_brands, fit_blend
from congruence.training.evaluate import Scorer, evaluate, head_scorer
from congruence.training.experiment import PRODUCT, ExperimentResult
from congruence.training.fusion import Graph
from congruence.training.loop import EpochStats, TrainConfig
from congruence.training.model import CongruenceHead
from congruence.training.ranking_metrics import Metrics

logger = logging.getLogger(__name__)
BLENDED = "head+category"  # the product for a brand with no known partner, scored over every candidate
SERVED = "head+category_served"  # the same as a served list holds it: the head's best N reordered


def learn(
    postsets: PostSets,
    pairs: Sequence[tuple[str, str]],
    exp: ExperimentResult,
    config: TrainConfig,
    graph: Graph | None,
    progress: Callable[[str, EpochStats], None] | None = None,
) -> CategoryBlend | None:
    """The blend for ``exp``'s product head: learned on the fusion's reserved brands, scored by
    that head (it never trained on them), or else on a seeded quarter of the training brands,
    scored by a head trained as the product's on the others (``blend``: its progress name)."""
    from congruence.training.data import Split
    from congruence.training.experiment import train_variant

    category = dict(zip(postsets.account_ids, postsets.categories, strict=True))
    train = list(exp.split.train_brands)
    if exp.reserved:
        fit, head = list(exp.reserved), exp.models[PRODUCT]
        train += fit
    else:
        fit = blend_brands(pairs, train, category, config.seed)
        if not fit:
            return None
        rest = Split(tuple(b for b in train if b not in set(fit)), exp.split.test_brands)
        base = exp.models[PRODUCT].config
        head = train_variant(PRODUCT, postsets, pairs, config, base, rest, exp.excluded, _named(progress))
    influencers = [
        a
        for a, k in zip(postsets.account_ids, postsets.kinds, strict=True)
        if k == "influencer" and a not in exp.excluded
    ]
    content = _content(head, postsets)
    blend = fit_blend(pairs, train, fit, category, influencers, content, propensity_of(graph), config.seed)
    if blend is not None:
        logger.info("category blend learned on %d brands: weights %s", blend.brands, blend.weights)
    return blend


def _named(
    progress: Callable[[str, EpochStats], None] | None,
) -> Callable[[str, EpochStats], None] | None:
    return None if progress is None else (lambda _name, stats: progress("blend", stats))


def _content(head: CongruenceHead, postsets: PostSets) -> Content:
    score, index = head_scorer(head), postsets.index_of()

    def content(brand: str, ids: Sequence[str]) -> np.ndarray:
        rows = np.fromiter((index[a] for a in ids), np.int64, count=len(ids))
        return np.asarray(score(postsets, np.array([index[brand]]), rows)[0], np.float64)

    return content


def propensity_of(graph: Graph | None) -> Callable[[str, Sequence[str]], np.ndarray]:
    """(brand, influencer ids) -> how many distinct handles each tagged or was sponsored by, but
    the brand itself (``CollabIndex.tag_counts``, as the blend is served); zeros without a graph.
    Known matches never count: they are the labels, the held-out brands' included."""
    if graph is None:
        return lambda _b, ids: np.zeros(len(ids))
    row_of = {a: i for i, a in enumerate(graph.table.ids)}

    def propensity(brand: str, ids: Sequence[str]) -> np.ndarray:
        r = np.fromiter((row_of.get(a, -1) for a in ids), np.int64, count=len(ids))
        out = np.zeros(len(ids))
        out[r >= 0] = graph.ci.tag_counts(r[r >= 0], graph.own.get(brand, ()))
        return out

    return propensity


def blend_scorer(blend: CategoryBlend, head: CongruenceHead, graph: Graph | None) -> Scorer:
    """The product's score of a brand with no known partner, as an evaluation scorer: the
    head's, blended where the brand's category is in the table."""
    base, propensity = head_scorer(head), propensity_of(graph)

    def score(ps: PostSets, brand_rows: np.ndarray, cand_rows: np.ndarray) -> np.ndarray:
        s = np.asarray(base(ps, brand_rows, cand_rows), np.float64)
        cats = [ps.categories[int(r)] for r in cand_rows]
        ids = [ps.account_ids[int(r)] for r in cand_rows]
        for i, b in enumerate(brand_rows):
            bc = ps.categories[int(b)]
            if blend.knows(bc):
                s[i] = blend.score(s[i], bc, cats, propensity(ps.account_ids[int(b)], ids))
        return s

    return score


def served_scorer(blend: CategoryBlend, head: CongruenceHead, graph: Graph | None, candidates: int) -> Scorer:
    """The blend as a served list holds it: the head's best ``candidates`` of each brand ordered by
    the blend, the rest after them in the head's order (the blend reorders the candidates the
    search gives the head; it brings in none of its own)."""
    base, blended = head_scorer(head), blend_scorer(blend, head, graph)

    def score(ps: PostSets, brand_rows: np.ndarray, cand_rows: np.ndarray) -> np.ndarray:
        s = np.asarray(base(ps, brand_rows, cand_rows), np.float64)
        b = blended(ps, brand_rows, cand_rows)
        out = s - 1e6
        for i in range(len(brand_rows)):
            top = np.argsort(-s[i], kind="stable")[:candidates]
            out[i, top] = b[i, top] + 1e6
        return out

    return score


def blend_results(
    blend: CategoryBlend,
    head: CongruenceHead,
    postsets: PostSets,
    pairs: Sequence[tuple[str, str]],
    test_brands: Sequence[str],
    graph: Graph | None,
    test_influencers: Sequence[str] | None,
    candidates: int,
) -> dict[str, Metrics]:
    """The product for a brand with no known partner on ``test_brands``: ``BLENDED`` (every
    candidate blended, as the head's row scores every candidate) and ``SERVED``."""

    def measure(scorer: Scorer) -> Metrics:
        return evaluate(scorer, postsets, pairs, test_brands, head.train_brands, test_influencers)

    return {
        BLENDED: measure(blend_scorer(blend, head, graph)),
        SERVED: measure(served_scorer(blend, head, graph, candidates)),
    }
