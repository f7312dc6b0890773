"""Engagement: train the post-success model on the store's liked posts, evaluate, put it in service.

Labels (``labels``): likes standardised within each account (robust z-score of
log-likes), 0-10 as 10 Φ(z). Model (``ensemble``): MLPs (``model``) on
image, caption and alt-text embeddings, follower count and hand-made post features
(``features``), averaged with a pairwise linear model on the same. Evaluation:
pairwise accuracy on accounts held out from training, next to a constant and a
follower-count baseline. Suggestions (``measure``): the concepts whose effect on the label
holds up on those same held-out accounts. The checkpoint (``checkpoint``, with the encoder
names, what the model rests on and the evidence for suggestions) goes to
``models/engagement/VERSION.pt``; the version in service is store_meta ``engagement_version``.
A model is put in service only when it beats the baselines on the held-out pairs
(``Verdict``), as a congruence head must beat pooled cosine; a losing one is saved, and the
model in service stays.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from congruence.core.device import resolve_device
from congruence.core.errors import InvalidInput, first_of
from congruence.core.idfile import read_id_lines
from congruence.core.settings import Settings
from congruence.encoders.encoder_set import EncoderSet
from congruence.engagement.checkpoint import EngagementModel, save_model
from congruence.engagement.data import EngagementData, load_engagement_data
from congruence.engagement.ensemble import train_ensemble
from congruence.engagement.evidence import Evidence
from congruence.engagement.labels import REFERENCE, pairwise_accuracy
from congruence.engagement.measure import image_bank, measure_suggestions
from congruence.engagement.model import EngagementConfig, EpochLog, split_accounts
from congruence.store.records import Store
from congruence.training import lifecycle
from congruence.training.lifecycle import ENGAGEMENT

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Accuracy:
    accuracy: float
    pairs: int

    def to_dict(self) -> dict[str, float | int | None]:
        return {"pairwise_accuracy": None if np.isnan(self.accuracy) else round(self.accuracy, 4), "pairs": self.pairs}


@dataclass(frozen=True)
class Verdict:
    """Whether the model beats the best baseline (a constant score, follower count: 0.5 by
    construction) on the held-out pairs. No held-out pair with different likes: it does not,
    there is nothing to tell it from guessing."""

    beats: bool
    accuracy: float
    baseline: float
    pairs: int

    @classmethod
    def of(cls, results: dict[str, Accuracy]) -> Verdict:
        model = results["model"]
        base = max((r.accuracy for k, r in results.items() if k != "model" and not np.isnan(r.accuracy)), default=0.5)
        beats = model.pairs > 0 and not np.isnan(model.accuracy) and model.accuracy > base
        return cls(bool(beats), model.accuracy, base, model.pairs)

    def __str__(self) -> str:
        if not self.pairs:
            return "no held-out pair of posts with different likes to test it on"
        return (
            f"held-out pairwise accuracy {self.accuracy:.4f} vs {self.baseline:.4f} for the best baseline "
            f"({self.pairs} pairs)"
        )

    def refusal(self) -> str:
        """Why a model with this verdict is not put in service."""
        if not self.pairs:
            return f"it cannot be tested: {self}"
        return f"it does not beat the baselines on the held-out accounts ({self})"


@dataclass(frozen=True)
class EngagementReport:
    version: str
    path: Path
    activated: bool
    verdict: Verdict
    serving: str | None  # the version in service after this run
    results: dict[str, Accuracy]
    n_train_accounts: int
    n_test_accounts: int
    n_train_posts: int
    n_test_posts: int
    evidence: Evidence
    basis: dict[str, Any]
    config: EngagementConfig
    epochs: list[EpochLog]
    trained_with: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        return {
            "results": {k: v.to_dict() for k, v in self.results.items()},
            "model": {
                "version": self.version,
                "path": str(self.path),
                "activated": self.activated,
                "beats_baseline": self.verdict.beats,
                "verdict": str(self.verdict),
                "in_service": self.serving,
            },
            "split": {
                "train_accounts": self.n_train_accounts,
                "test_accounts": self.n_test_accounts,
                "train_posts": self.n_train_posts,
                "test_posts": self.n_test_posts,
            },
            "evidence": self.evidence.to_dict(),
            "basis": self.basis,
            "trained_with": self.trained_with,
            "config": asdict(self.config),
            "epochs": [asdict(e) for e in self.epochs],
            "reference": dict(REFERENCE),
        }


def read_account_file(path: Path) -> list[str]:
    """Account ids, one a line; blank lines and lines starting with # are skipped."""
    return list(read_id_lines(path, "account"))


def split_accounts_of(
    data: EngagementData, test: Sequence[str] | None, fraction: float, seed: int
) -> tuple[list[str], list[str]]:
    """(training, held-out) accounts: ``test`` when given (those with two liked posts here), else a seeded
    ``fraction``."""
    if test is None:
        return split_accounts(data.account_ids, fraction, seed)
    known = set(data.account_ids)
    held = sorted(set(test) & known)
    if len(held) < len(set(test)):
        out = sorted(set(test) - known)
        logger.warning(
            "%d test accounts have fewer than two posts with likes here, left out: %s", len(out), first_of(out)
        )
    if not held:
        raise InvalidInput("none of the test accounts has two or more posts with likes in this store")
    train = [a for a in data.account_ids if a not in set(held)]
    if not train:
        raise InvalidInput("every account is a test account: nothing left to train on")
    return sorted(train), held


def baselines(data: EngagementData, rows: np.ndarray) -> dict[str, Accuracy]:
    """Constant (every post ties: 0.5) and follower count. Followers are a property of the
    account, so within one account every pair ties as well: also 0.5, by construction."""
    lk, g = data.likes[rows], data.groups[rows]
    const = pairwise_accuracy(np.zeros(len(rows)), lk, g)
    fol = pairwise_accuracy(np.nan_to_num(data.features.log_followers[rows], nan=-1.0), lk, g)
    return {"constant": Accuracy(*const), "followers": Accuracy(*fol)}


def corpus_name(store: Store, post_ids: Sequence[str]) -> str:
    """The folder name(s) the posts were ingested from, most posts first ("demo-corpus")."""
    rows = store.conn.execute(
        "SELECT corpus_root, count(*) FROM posts WHERE id = ANY(%s) GROUP BY corpus_root"
        " ORDER BY count(*) DESC, corpus_root",
        (list(post_ids),),
    ).fetchall()
    names = list(dict.fromkeys(Path(r[0]).name or r[0] for r in rows if r[0]))
    return first_of(names, 3, " + ")


def train_engagement(
    settings: Settings,
    config: EngagementConfig,
    test_accounts: Sequence[str] | None = None,
    test_fraction: float = 0.2,
    activate: bool = True,
    progress: Callable[[EpochLog], None] | None = None,
    activate_anyway: bool = False,
) -> EngagementReport:
    """Train on the store's liked posts, evaluate on held-out accounts, save, and put in
    service when ``activate`` and it beats the baselines there (``Verdict``) or
    ``activate_anyway``."""
    encs = EncoderSet(settings)
    with Store.open(settings) as store:
        data = load_engagement_data(store, encs)
        unknown = [] if test_accounts is None else sorted(set(test_accounts) - set(store.account_kinds(test_accounts)))
    if unknown:
        raise InvalidInput(f"names unknown account ids: {first_of(unknown)}", field="test_accounts")
    if len(data.account_ids) < 2:
        raise InvalidInput("too few accounts with two or more liked posts to train the engagement model")
    train_acc, test_acc = split_accounts_of(data, test_accounts, test_fraction, config.seed)
    train_rows, test_rows = data.accounts_rows(train_acc), data.accounts_rows(test_acc)
    net, logs = train_ensemble(data, train_rows, config, progress, str(resolve_device(settings.device)))
    results = baselines(data, test_rows)
    results["model"] = Accuracy(
        *pairwise_accuracy(net.predict(data.features.take(test_rows)), data.likes[test_rows], data.groups[test_rows])
    )
    suggestions = measure_suggestions(
        data, train_rows, test_rows, image_bank(settings.image_encoder, settings.device, data), config.seed
    )
    f = data.features
    trained_with = {
        "image": int(f.image_mask[train_rows].sum()),
        "caption": int(f.text_mask[train_rows].sum()),
        "alt": int(f.alt_mask[train_rows].sum()),
        "posts": len(train_rows),
    }
    with Store.open(settings) as store:
        basis = {
            "corpus": corpus_name(store, data.post_ids),
            "accounts": len(train_acc),
            "posts": len(train_rows),
            "held_out_accounts": len(test_acc),
            "held_out_posts": len(test_rows),
        }
    metrics: dict[str, Any] = {
        **{k: v.to_dict() for k, v in results.items()},
        "trained_with": trained_with,
        "basis": basis,
    }
    model = EngagementModel(net, suggestions, settings.image_encoder, settings.text_encoder, metrics=metrics)
    version, path = save_model(settings, model)
    verdict = Verdict.of(results)
    activated = activate and (verdict.beats or activate_anyway)
    with Store.open(settings) as store:
        if activated:
            lifecycle.activate(store, ENGAGEMENT, version)
        serving = lifecycle.active_version(store, ENGAGEMENT)
    if activate and not activated:
        logger.warning("engagement model %s not put in service: %s", version, verdict.refusal())
    logger.info("engagement model %s: %s", version, verdict)
    return EngagementReport(
        version,
        path,
        activated,
        verdict,
        serving,
        results,
        len(train_acc),
        len(test_acc),
        len(train_rows),
        len(test_rows),
        suggestions.evidence,
        basis,
        config,
        logs,
        trained_with,
    )
