"""Engagement: train the post-success model on the store's liked posts, evaluate, put it in service.

Labels (``engagement_labels``): likes standardised within each account (robust z-score of
log-likes), 0-10 as 10 Φ(z). Model (``engagement_ensemble``): MLPs (``engagement_model``) on
image, caption and alt-text embeddings, follower count and hand-made post features
(``engagement_features``), averaged with a pairwise linear model on the same. Evaluation:
pairwise accuracy on accounts held out from training, next to a constant and a
follower-count baseline. The checkpoint (with the
encoder names and the concepts for suggestions) goes to ``models/engagement/VERSION.pt``;
the version in service is store_meta ``engagement_version``.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from congruence.core.errors import InvalidInput, ModelMismatch, NotFound
from congruence.core.idfile import read_id_lines
from congruence.core.settings import Settings
from congruence.indexer.encoder_set import EncoderSet
from congruence.indexer.store import Store
from congruence.training.engagement_concepts import Concepts, associate, concept_bank
from congruence.training.engagement_data import EngagementData, load_engagement_data
from congruence.training.engagement_ensemble import EngagementEnsemble, train_ensemble
from congruence.training.engagement_features import FEATURES
from congruence.training.engagement_labels import pairwise_accuracy
from congruence.training.engagement_model import EngagementConfig, EpochLog, split_accounts

logger = logging.getLogger(__name__)
ACTIVE_KEY = "engagement_version"
# /2: hand-made features and an ensemble; a /1 checkpoint's inputs no longer exist
FORMAT = "congruence-engagement/2"
OLD_FORMATS = ("congruence-engagement/1",)
NO_MODEL = "no engagement model yet: run `congruence engagement train`"


@dataclass(frozen=True)
class Accuracy:
    accuracy: float
    pairs: int

    def to_dict(self) -> dict[str, float | int | None]:
        return {"pairwise_accuracy": None if np.isnan(self.accuracy) else round(self.accuracy, 4),
                "pairs": self.pairs}


@dataclass(frozen=True)
class EngagementModel:
    """A trained model with what serving needs: encoder names, concepts, version."""

    net: EngagementEnsemble
    concepts: Concepts
    image_encoder: str
    text_encoder: str
    version: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EngagementReport:
    version: str
    path: Path
    activated: bool
    results: dict[str, Accuracy]
    n_train_accounts: int
    n_test_accounts: int
    n_train_posts: int
    n_test_posts: int
    concepts: list[tuple[str, float]]
    concept_note: str
    config: EngagementConfig
    epochs: list[EpochLog]
    trained_with: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        return {
            "results": {k: v.to_dict() for k, v in self.results.items()},
            "model": {"version": self.version, "path": str(self.path), "activated": self.activated},
            "split": {"train_accounts": self.n_train_accounts, "test_accounts": self.n_test_accounts,
                      "train_posts": self.n_train_posts, "test_posts": self.n_test_posts},
            "concepts": [{"name": n, "corr": round(c, 4)} for n, c in self.concepts],
            "concept_note": self.concept_note,
            "trained_with": self.trained_with,
            "config": asdict(self.config),
            "epochs": [asdict(e) for e in self.epochs],
            "reference": {"imagion_model": 0.5024, "expert": 0.675, "average_person": 0.475},
        }


def checkpoint_path(settings: Settings, version: str) -> Path:
    return settings.models_dir / "engagement" / f"{version}.pt"


def save_model(settings: Settings, model: EngagementModel) -> tuple[str, Path]:
    """Write models/engagement/VERSION.pt (weights_only-loadable); returns (version, path)."""
    state = {k: v.detach().cpu() for k, v in model.net.state_dict().items()}
    h = hashlib.sha256()
    for k in sorted(state):
        h.update(k.encode() + state[k].numpy().tobytes())
    version = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + h.hexdigest()[:12]
    c = model.concepts
    payload = {
        "format": FORMAT, "version": version, "state_dict": state,
        "dims": [model.net.d_image, model.net.d_text, model.net.hidden], "dropout": model.net.dropout,
        "members": model.net.n_members, "linear": model.net.linear is not None, "features": list(FEATURES),
        "meta": {"image_encoder": model.image_encoder, "text_encoder": model.text_encoder},
        "concepts": {"names": list(c.names), "vectors": torch.from_numpy(c.vectors), "mean": torch.from_numpy(c.mean),
                     "std": torch.from_numpy(c.std), "corr": torch.from_numpy(c.corr), "n_images": c.n_images},
        "metrics": model.metrics,
    }
    path = checkpoint_path(settings, version)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)  # a reader never sees a half-written checkpoint
    return version, path


def load_model(path: Path) -> EngagementModel:
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(payload, dict) and payload.get("format") in OLD_FORMATS:
        raise ModelMismatch(f"{path}: engagement model of an older format ({payload['format']}); "
                            f"run `congruence engagement train` again")
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path}: not an engagement checkpoint ({FORMAT})")
    if payload.get("features") != list(FEATURES):
        raise ModelMismatch(f"{path}: engagement model trained on other post features; "
                            f"run `congruence engagement train` again")
    d_image, d_text, hidden = payload["dims"]
    net = EngagementEnsemble(d_image, d_text, hidden, payload["dropout"], payload["members"], payload["linear"])
    net.load_state_dict(payload["state_dict"])
    c = payload["concepts"]
    concepts = Concepts(list(c["names"]), c["vectors"].numpy(), c["mean"].numpy(), c["std"].numpy(),
                        c["corr"].numpy(), int(c["n_images"]))
    meta = payload["meta"]
    return EngagementModel(net.eval(), concepts, meta["image_encoder"], meta["text_encoder"], payload["version"],
                           dict(payload.get("metrics") or {}))


def load_active(settings: Settings, store: Store) -> EngagementModel:
    """The engagement model in service; NotFound when none, ModelMismatch on other encoders."""
    version = store.meta().get(ACTIVE_KEY)
    if not version:
        raise NotFound(NO_MODEL)
    path = checkpoint_path(settings, version)
    if not path.is_file():
        raise NotFound(f"the engagement model {version} has no checkpoint at {path}; {NO_MODEL.split(': ')[1]}")
    model = load_model(path)
    if (model.image_encoder, model.text_encoder) != (settings.image_encoder, settings.text_encoder):
        raise ModelMismatch(f"engagement model {version} was trained on {model.image_encoder!r} + "
                            f"{model.text_encoder!r} embeddings, not {settings.image_encoder!r} + {settings.text_encoder!r}")
    return model


def read_account_file(path: Path) -> list[str]:
    """Account ids, one a line; blank lines and lines starting with # are skipped."""
    return list(read_id_lines(path, "account"))


def _split(data: EngagementData, test: Sequence[str] | None, fraction: float, seed: int) -> tuple[list[str], list[str]]:
    if test is None:
        return split_accounts(data.account_ids, fraction, seed)
    known = set(data.account_ids)
    held = sorted(set(test) & known)
    if len(held) < len(set(test)):
        logger.warning("%d test accounts have fewer than two liked posts here; left out", len(set(test)) - len(held))
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


def _concepts(settings: Settings, data: EngagementData, rows: np.ndarray) -> tuple[Concepts, str]:
    with_image = rows[data.features.image_mask[rows]]
    d_image = data.features.image.shape[1]
    if not len(with_image):
        return Concepts.empty(d_image), "no training post has an image: no visual suggestions"
    bank = concept_bank(settings.image_encoder, "cuda" if settings.device == "cuda" else "cpu")
    if bank is None:
        return Concepts.empty(d_image), f"image encoder {settings.image_encoder} names no concepts"
    found = associate(bank, data.features.image[with_image], data.z[with_image])
    if not found.names:
        return found, f"no concept correlates positively with engagement over {len(with_image)} images"
    return found, f"concepts correlated with engagement over {found.n_images} training images"


def train_engagement(settings: Settings, config: EngagementConfig, test_accounts: Sequence[str] | None = None,
                     test_fraction: float = 0.2, activate: bool = True,
                     progress: Callable[[EpochLog], None] | None = None) -> EngagementReport:
    """Train on the store's liked posts, evaluate on held-out accounts, save (and activate)."""
    encs = EncoderSet(settings)
    with Store.open(settings) as store:
        data = load_engagement_data(store, encs)
    if len(data.account_ids) < 2:
        raise InvalidInput("too few accounts with two or more liked posts to train the engagement model")
    train_acc, test_acc = _split(data, test_accounts, test_fraction, config.seed)
    train_rows, test_rows = data.accounts_rows(train_acc), data.accounts_rows(test_acc)
    device = "cuda" if settings.device == "cuda" or (settings.device == "auto" and torch.cuda.is_available()) else "cpu"
    net, logs = train_ensemble(data, train_rows, config, progress, device)
    results = baselines(data, test_rows)
    results["model"] = Accuracy(*pairwise_accuracy(net.predict(data.features.take(test_rows)),
                                                   data.likes[test_rows], data.groups[test_rows]))
    concepts, note = _concepts(settings, data, train_rows)
    f = data.features
    trained_with = {"image": int(f.image_mask[train_rows].sum()), "caption": int(f.text_mask[train_rows].sum()),
                    "alt": int(f.alt_mask[train_rows].sum()), "posts": len(train_rows)}
    metrics: dict[str, Any] = {**{k: v.to_dict() for k, v in results.items()}, "trained_with": trained_with}
    model = EngagementModel(net, concepts, settings.image_encoder, settings.text_encoder, metrics=metrics)
    version, path = save_model(settings, model)
    if activate:
        with Store.open(settings) as store:
            store.set_meta(ACTIVE_KEY, version)
    logger.info("engagement model %s: held-out pairwise accuracy %s", version, results["model"].accuracy)
    return EngagementReport(version, path, activate, results, len(train_acc), len(test_acc), len(train_rows),
                            len(test_rows), list(zip(concepts.names, concepts.corr.tolist(), strict=True)), note,
                            config, logs, trained_with)
