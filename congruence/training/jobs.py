"""The train and evaluate jobs over the store: what `congruence train/evaluate` run."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from congruence.core.errors import InvalidInput
from congruence.core.idfile import read_id_lines
from congruence.core.settings import Settings
from congruence.encoders.encoder_set import EncoderSet, ModelIds
from congruence.store.postsets import PostSets
from congruence.store.records import Store
from congruence.store.vectors import VectorStore
from congruence.training.category_blend import CategoryBlend
from congruence.training.checkpoint import load_head, save_head
from congruence.training.cold_start import blend_results
from congruence.training.cold_start import learn as learn_blend
from congruence.training.data import Pair
from congruence.training.deploy import DeployReport, deploy, encoder_meta, load_active, save_checkpoint
from congruence.training.experiment import PRODUCT, ExperimentResult, evaluate_models, run_experiment
from congruence.training.fusion import Graph, fusion_brands
from congruence.training.loop import EpochStats, TrainConfig
from congruence.training.model import CongruenceHead, HeadConfig, MetaValue
from congruence.training.ranking_metrics import Metrics

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingData:
    postsets: PostSets
    pairs: list[Pair]
    ids: ModelIds


def load_training_data(settings: Settings) -> TrainingData:
    """Every account's post features and every known match, from the store."""
    with Store.open(settings) as store:
        ids = EncoderSet(settings).model_ids(store)
        postsets = VectorStore(store).post_sets(ids.image, ids.text, ids.d_image, ids.d_text)
        pairs = store.matches()
    if not pairs:
        raise InvalidInput("no matches to learn from: add matches.jsonl to a corpus and ingest it")
    with_posts = set(postsets.account_ids)
    usable = [p for p in pairs if p[0] in with_posts and p[1] in with_posts]
    if len(usable) < len(pairs):
        logger.warning("%d matches name accounts without posts; left out", len(pairs) - len(usable))
    return TrainingData(postsets, usable, ids)


def read_brand_file(path: Path) -> list[str]:
    """Brand ids, one a line; blank lines and lines starting with # are skipped."""
    return list(read_id_lines(path, "brand"))


def read_influencer_file(path: Path) -> list[str]:
    """Influencer ids, one a line; blank lines and lines starting with # are skipped."""
    return list(read_id_lines(path, "influencer"))


@dataclass(frozen=True)
class Verdict:
    """Whether the new head beats pooled cosine on the held-out brands, with both figures."""

    beats: bool
    head_auc: float
    cosine_auc: float
    head_r10: float
    cosine_r10: float

    @classmethod
    def of(cls, exp: ExperimentResult) -> Verdict:
        h, c = exp.results[PRODUCT], exp.results["pooled_cosine"]
        # better on one measure and no worse on the other (a tiny corpus can tie R@10 at 1.0)
        beats = (h.auc > c.auc and h.recall_at_10 >= c.recall_at_10) or (
            h.auc >= c.auc and h.recall_at_10 > c.recall_at_10
        )
        return cls(bool(beats), h.auc, c.auc, h.recall_at_10, c.recall_at_10)

    def __str__(self) -> str:
        auc_ratio = f" ({self.head_auc - self.cosine_auc:+.3f})"
        r10 = f"{self.head_r10 / self.cosine_r10:.2f}x" if self.cosine_r10 > 0 else "n/a"
        return (
            f"held-out AUC {self.head_auc:.3f} vs pooled cosine {self.cosine_auc:.3f}{auc_ratio}, "
            f"R@10 {self.head_r10:.3f} vs {self.cosine_r10:.3f} ({r10})"
        )


@dataclass(frozen=True)
class TrainOutcome:
    """deployed: the report when the head was put in service, else None (see ``verdict``)."""

    experiment: ExperimentResult
    version: str
    run_dir: Path
    deployed: DeployReport | None
    verdict: Verdict


def train_and_deploy(
    settings: Settings,
    config: TrainConfig,
    variants: Sequence[str],
    test_brands: Sequence[str] | None,
    test_fraction: float,
    activate: bool = True,
    progress: Callable[[str, EpochStats], None] | None = None,
    d_model: int = 0,
    test_influencers: Sequence[str] | None = None,
    activate_anyway: bool = False,
) -> TrainOutcome:
    """Train and evaluate ``variants``, save them all, and put the product head in service if
    it beats pooled cosine on the held-out brands (``Verdict``), or ``activate_anyway``; a
    losing head is saved, and what is in service stays.

    d_model: width of the head's space (0: the HeadConfig default). test_influencers: see
    ``run_experiment``.
    """
    data = load_training_data(settings)
    head_config = HeadConfig(data.postsets.d_image, data.postsets.d_text)
    if d_model:
        head_config = replace(head_config, d_model=d_model)
    if PRODUCT not in variants:
        variants = (PRODUCT, *variants)
    with Store.open(settings) as store:
        graph = Graph.load(store)
    reserve = None
    if graph is not None:  # collaborative evidence: keep some training brands for the fusion to learn on
        counts = graph.partner_counts(data.pairs)
        reserve = lambda train: fusion_brands({b: counts.get(b, 0) for b in train}, config.seed)  # noqa: E731
    exp = run_experiment(
        data.postsets,
        data.pairs,
        test_brands,
        config,
        head_config,
        variants,
        test_fraction=test_fraction,
        progress=progress,
        test_influencers=test_influencers,
        reserve=reserve,
    )
    head = exp.models[PRODUCT]
    meta: dict[str, MetaValue] = {
        **encoder_meta(data.ids),
        "loss": config.loss,
        "aux_weight": config.aux_weight,
        "epochs": config.epochs,
        "seed": config.seed,
        "towers": head.config.towers,
    }
    if graph is not None and exp.reserved:
        fusion = graph.fit(data.postsets, head, exp.reserved, data.pairs, settings.candidates, config.seed)
        if fusion is not None:
            meta.update(fusion.to_meta())
    blend = learn_blend(data.postsets, data.pairs, exp, config, graph, progress)
    if blend is not None:
        meta.update(blend.to_meta())
        test = exp.split.test_brands
        rows = blend_results(blend, head, data.postsets, data.pairs, test, graph, test_influencers, settings.candidates)
        exp.results.update(rows)
    verdict = Verdict.of(exp)
    if activate and not verdict.beats and not activate_anyway:
        logger.warning("head not put in service: %s", verdict)
    report = deploy(settings, head, meta) if activate and (verdict.beats or activate_anyway) else None
    if report is None:
        save_checkpoint(settings, head, meta)
    run_dir = settings.models_dir / "runs" / head.version
    for name, model in exp.models.items():
        if name != PRODUCT:
            save_head(model, run_dir / f"{name}.pt", {**meta, "variant": name})
    return TrainOutcome(exp, head.version, run_dir, report, verdict)


def evaluate_saved(
    settings: Settings,
    model_path: Path | None,
    test_brands: Sequence[str] | None,
    seed: int = 0,
    test_influencers: Sequence[str] | None = None,
) -> tuple[dict[str, Metrics], CongruenceHead, list[str]]:
    """Metrics of the head in service (or ``model_path``) and its run's variants on held-out brands.

    Without ``test_brands``: every brand with a match that the head was not trained on.
    """
    data = load_training_data(settings)
    if model_path is not None:
        head = load_head(model_path)
    else:
        with Store.open(settings) as store:
            active = load_active(settings, store)
        if active is None:
            raise InvalidInput("no trained congruence head: run `congruence train` first, or pass --model")
        head = active
    brands = sorted({b for b, _ in data.pairs})
    test = list(test_brands) if test_brands is not None else [b for b in brands if b not in set(head.train_brands)]
    if not test:
        raise InvalidInput(
            "no held-out brands: every brand with matches was used in training; pass --test-brands or add brands"
        )
    models = {PRODUCT: head}
    run_dir = settings.models_dir / "runs" / head.version
    for path in sorted(run_dir.glob("*.pt")) if head.version else []:
        models[path.stem] = load_head(path)
    results = evaluate_models(data.postsets, data.pairs, test, models, seed, test_influencers)
    blend = CategoryBlend.from_meta(head.meta)
    if blend is not None:  # the product for a brand with no known partner, as train reports it
        with Store.open(settings) as store:
            graph = Graph.load(store)
        ps, pairs, n = data.postsets, data.pairs, settings.candidates
        results.update(blend_results(blend, head, ps, pairs, test, graph, test_influencers, n))
    return results, head, test
