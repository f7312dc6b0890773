"""The engagement model on disk and in service.

A checkpoint (``models/engagement/VERSION.pt``) holds the ensemble's weights, the encoder
names it was trained on, its held-out metrics and what it rests on, and the evidence
for suggestions (``suggest.SuggestionBank``), as plain values and tensors that
load with ``torch.load(weights_only=True)``. Versions, atomic saving and the store key of the
version in service (``engagement_version``) are ``training.lifecycle``'s.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from congruence.core.errors import ModelMismatch, NotFound
from congruence.core.settings import Settings
from congruence.engagement.ensemble import EngagementEnsemble
from congruence.engagement.features import FEATURES
from congruence.engagement.suggest import SuggestionBank
from congruence.store.records import Store
from congruence.training import lifecycle
from congruence.training.lifecycle import ENGAGEMENT

ACTIVE_KEY = ENGAGEMENT.active_key
# /2: hand-made features and an ensemble; a /1 checkpoint's inputs no longer exist.
# /3: suggestions from the evidence test, which a /2 checkpoint never ran
FORMAT = "congruence-engagement/3"
OLD_FORMATS = ("congruence-engagement/1", "congruence-engagement/2")
NO_MODEL = "no engagement model yet: run `congruence engagement train`"


@dataclass(frozen=True)
class EngagementModel:
    """A trained model with what serving needs: encoder names, suggestions, version, metrics."""

    net: EngagementEnsemble
    suggestions: SuggestionBank
    image_encoder: str
    text_encoder: str
    version: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)


def checkpoint_path(settings: Settings, version: str) -> Path:
    return lifecycle.checkpoint_path(settings, ENGAGEMENT, version)


def save_model(settings: Settings, model: EngagementModel) -> tuple[str, Path]:
    """Write models/engagement/VERSION.pt (weights_only-loadable); returns (version, path)."""
    state = {k: v.detach().cpu() for k, v in model.net.state_dict().items()}
    version = lifecycle.new_version(state)
    payload = {
        "format": FORMAT,
        "version": version,
        "state_dict": state,
        "dims": [model.net.d_image, model.net.d_text, model.net.hidden],
        "dropout": model.net.dropout,
        "members": model.net.n_members,
        "linear": model.net.linear is not None,
        "features": list(FEATURES),
        "meta": {"image_encoder": model.image_encoder, "text_encoder": model.text_encoder},
        "suggestions": model.suggestions.to_payload(),
        "metrics": model.metrics,
    }
    path = checkpoint_path(settings, version)
    lifecycle.save_atomic(payload, path)
    return version, path


def load_model(path: Path) -> EngagementModel:
    payload = lifecycle.load_payload(path)
    if isinstance(payload, dict) and payload.get("format") in OLD_FORMATS:
        raise ModelMismatch(
            f"{path}: engagement model of an older format ({payload['format']}); "
            f"run `congruence engagement train` again"
        )
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path}: not an engagement checkpoint ({FORMAT})")
    if payload.get("features") != list(FEATURES):
        raise ModelMismatch(
            f"{path}: engagement model trained on other post features; run `congruence engagement train` again"
        )
    d_image, d_text, hidden = payload["dims"]
    net = EngagementEnsemble(d_image, d_text, hidden, payload["dropout"], payload["members"], payload["linear"])
    net.load_state_dict(payload["state_dict"])
    meta = payload["meta"]
    suggestions = SuggestionBank.from_payload(payload["suggestions"])
    return EngagementModel(
        net.eval(),
        suggestions,
        meta["image_encoder"],
        meta["text_encoder"],
        payload["version"],
        dict(payload.get("metrics") or {}),
    )


def load_active(settings: Settings, store: Store) -> EngagementModel | None:
    """The engagement model in service, None when none was put in service; ModelMismatch when its
    checkpoint is missing or unreadable (``lifecycle.load_active``) or it was trained on other encoders."""
    model = lifecycle.load_active(settings, store, ENGAGEMENT, load_model)
    if model is None:
        return None
    if (model.image_encoder, model.text_encoder) != (settings.image_encoder, settings.text_encoder):
        raise ModelMismatch(
            f"engagement model {model.version} was trained on {model.image_encoder!r} + "
            f"{model.text_encoder!r} embeddings, not {settings.image_encoder!r} + {settings.text_encoder!r}"
        )
    return model


def require_active(settings: Settings, store: Store) -> EngagementModel:
    """``load_active`` for callers that need a model: NotFound, saying what to run, when there is none."""
    model = load_active(settings, store)
    if model is None:
        raise NotFound(NO_MODEL)
    return model
