"""One training run with its comparison table: baselines and the head's ablations.

Variants (all on the same brand-disjoint split and the same seed), towers x pooling x
auxiliary category task:
    head               two towers, attention pooling, auxiliary task (the model the product uses)
    head_mean          two towers, mean pooling, auxiliary task
    head_noaux         two towers, attention pooling, no auxiliary task
    head_mean_noaux    two towers, mean pooling, no auxiliary task
    shared             one shared tower, attention pooling, auxiliary task (the paper's head)
    shared_mean, shared_noaux, shared_mean_noaux: the same ablations of the shared head
Baselines: random scores, and cosine of the untrained pooled embeddings.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace

import numpy as np

from congruence.core.errors import InvalidInput
from congruence.store.postsets import PostSets
from congruence.training.data import Pair, Split, brand_disjoint_split, held_out_influencers
from congruence.training.evaluate import (
    Scorer,
    candidate_rows,
    evaluate,
    pooled_cosine,
    random_scorer,
    test_candidates,
)
from congruence.training.loop import EpochStats, TrainConfig, train
from congruence.training.model import CongruenceHead, HeadConfig
from congruence.training.ranking_metrics import Metrics

logger = logging.getLogger(__name__)

PRODUCT = "head"


@dataclass(frozen=True)
class Variant:
    towers: str
    pooling: str
    aux: bool


VARIANTS: dict[str, Variant] = {
    "head": Variant("two", "attention", True),
    "head_mean": Variant("two", "mean", True),
    "head_noaux": Variant("two", "attention", False),
    "head_mean_noaux": Variant("two", "mean", False),
    "shared": Variant("shared", "attention", True),
    "shared_mean": Variant("shared", "mean", True),
    "shared_noaux": Variant("shared", "attention", False),
    "shared_mean_noaux": Variant("shared", "mean", False),
}


@dataclass(frozen=True)
class ExperimentResult:
    """Metrics per method on the held-out brands, the trained heads, and the split.

    aux_category_accuracy: per variant with the auxiliary task, the share of held-out
        influencers (never seen in training) whose category the head predicts; None
        when no held-out influencer has a known category.
    """

    results: dict[str, Metrics]
    models: dict[str, CongruenceHead]
    split: Split
    aux_category_accuracy: dict[str, float | None]
    n_heldout_influencers: int
    seconds: dict[str, float]
    reserved: tuple[str, ...] = ()  # training brands no head trained on (the fusion's: ``training.fusion``)
    excluded: frozenset[str] = frozenset()  # influencers no head trained on (the held-out candidates)

    def to_dict(self) -> dict[str, object]:
        return {
            "results": {name: m.to_dict() for name, m in self.results.items()},
            "per_brand": {name: m.per_brand_dicts() for name, m in self.results.items()},
            "aux_category_accuracy": self.aux_category_accuracy,
            "split": {
                "train_brands": len(self.split.train_brands),
                "fusion_brands": len(self.reserved),
                "test_brands": list(self.split.test_brands),
                "heldout_influencers": self.n_heldout_influencers,
            },
            "seconds": {k: round(v, 2) for k, v in self.seconds.items()},
        }


def category_accuracy(model: CongruenceHead, postsets: PostSets, rows: np.ndarray) -> float | None:
    """Share of the accounts at ``rows`` with a known category that ``model`` classifies right."""
    if model.classifier is None:
        return None
    known = [int(r) for r in rows if postsets.categories[int(r)] in model.categories]
    if not known:
        return None
    import torch

    pooled = torch.from_numpy(model.encode_accounts(postsets.subset(known))).to(model.device)
    with torch.no_grad():
        predicted = model.classify(pooled).argmax(dim=-1).cpu().numpy()
    truth = np.asarray([model.categories.index(postsets.categories[r]) for r in known])
    return float((predicted == truth).mean())


def heldout_rows(postsets: PostSets, pairs: Sequence[Pair], split: Split, fraction: float, seed: int) -> np.ndarray:
    """Influencers training never sees: those paired only with test brands, plus a seeded
    ``fraction`` of the influencers in no pair (so that category accuracy is measured on
    accounts the category task never saw, even where few influencers are paired)."""
    index = postsets.index_of()
    test_only = held_out_influencers(pairs, set(split.train_brands))
    paired = {i for _, i in pairs}
    unpaired = sorted(
        a for a, k in zip(postsets.account_ids, postsets.kinds, strict=True) if k == "influencer" and a not in paired
    )
    rng = np.random.default_rng(seed)
    extra = [unpaired[i] for i in rng.permutation(len(unpaired))[: round(fraction * len(unpaired))]]
    return np.asarray(sorted(index[a] for a in test_only | set(extra)), dtype=np.int64)


def _tagged(progress: Callable[[str, EpochStats], None] | None, name: str) -> Callable[[EpochStats], None] | None:
    if progress is None:
        return None
    return lambda stats: progress(name, stats)


def train_variant(
    name: str,
    postsets: PostSets,
    pairs: Sequence[Pair],
    config: TrainConfig,
    base: HeadConfig,
    split: Split,
    excluded: Collection[str],
    progress: Callable[[str, EpochStats], None] | None,
) -> CongruenceHead:
    v = VARIANTS[name]
    cfg = config if v.aux else replace(config, aux_weight=0.0)
    return train(
        postsets,
        pairs,
        cfg,
        replace(base, pooling=v.pooling, towers=v.towers),
        progress=_tagged(progress, name),
        train_brands=split.train_brands,
        exclude_influencers=excluded,
    ).model


def run_experiment(
    postsets: PostSets,
    pairs: Sequence[Pair],
    test_brands: Collection[str] | None = None,
    config: TrainConfig = TrainConfig(),
    head_config: HeadConfig | None = None,
    variants: Sequence[str] = tuple(VARIANTS),
    test_fraction: float = 0.2,
    heldout_fraction: float = 0.2,
    progress: Callable[[str, EpochStats], None] | None = None,
    test_influencers: Collection[str] | None = None,
    reserve: Callable[[Sequence[str]], Sequence[str]] | None = None,
) -> ExperimentResult:
    """Split brands, train every variant on the training brands, evaluate all on the test brands.

    reserve: given the training brands, those to keep out of every head's training as well
    (neither trained on nor evaluated: the fusion learns on them, ``training.fusion``).

    test_influencers: influencers never trained on (not even as negatives), and the only
    candidates of the evaluation; by default, those paired only with test brands plus a
    seeded ``heldout_fraction`` of the unpaired, with every influencer not paired only with
    training brands as a candidate.
    """
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise InvalidInput(
            f"names unknown {', '.join(unknown)}; expected some of {', '.join(VARIANTS)}", field="variants"
        )
    brands = sorted({b for b, _ in pairs})
    split = brand_disjoint_split(brands, test_fraction, config.seed, test_brands)
    reserved = tuple(sorted(reserve(split.train_brands))) if reserve is not None else ()
    if reserved:
        split = Split(tuple(b for b in split.train_brands if b not in set(reserved)), split.test_brands)
    heldout = (
        heldout_rows(postsets, pairs, split, heldout_fraction, config.seed)
        if test_influencers is None
        else candidate_rows(postsets, test_influencers)
    )
    excluded = {postsets.account_ids[int(r)] for r in heldout}
    seconds: dict[str, float] = {}
    results: dict[str, Metrics] = {}

    def measure(scorer: CongruenceHead | Scorer) -> Metrics:
        return evaluate(scorer, postsets, pairs, split.test_brands, split.train_brands, test_influencers)

    for name, scorer in (("random", random_scorer(config.seed)), ("pooled_cosine", pooled_cosine)):
        results[name] = measure(scorer)
    models: dict[str, CongruenceHead] = {}
    accuracy: dict[str, float | None] = {}
    base = head_config or HeadConfig(d_image=postsets.d_image, d_text=postsets.d_text)
    for name in variants:
        start = time.perf_counter()
        models[name] = train_variant(name, postsets, pairs, config, base, split, excluded, progress)
        seconds[f"train_{name}"] = time.perf_counter() - start
        results[name] = measure(models[name])
        if VARIANTS[name].aux:
            accuracy[name] = category_accuracy(models[name], postsets, heldout)
        logger.info("%s: %s", name, results[name].to_dict())
    n_cands = (
        int(test_candidates(postsets, pairs, split.test_brands).size) if test_influencers is None else int(heldout.size)
    )
    logger.info("evaluated on %d test brands x %d candidates", len(split.test_brands), n_cands)
    return ExperimentResult(results, models, split, accuracy, int(heldout.size), seconds, reserved, frozenset(excluded))


def evaluate_models(
    postsets: PostSets,
    pairs: Sequence[Pair],
    test_brands: Collection[str],
    models: dict[str, CongruenceHead],
    seed: int = 0,
    test_influencers: Collection[str] | None = None,
) -> dict[str, Metrics]:
    """Baselines and saved heads on ``test_brands``; refuses brands any head trained on."""
    scorers: dict[str, CongruenceHead | Scorer] = {
        "random": random_scorer(seed),
        "pooled_cosine": pooled_cosine,
        **models,
    }
    return {name: evaluate(s, postsets, pairs, test_brands, candidates=test_influencers) for name, s in scorers.items()}
