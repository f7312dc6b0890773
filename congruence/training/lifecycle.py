"""A trained model's life on disk and in the store, the same for every kind of model.

Each kind (the congruence head, the engagement model) keeps its checkpoints under
``models/<folder>/<version>.pt`` and records the version in service under its own
store_meta key. A version is the UTC time of saving plus a hash of the weights; a
checkpoint is written to a temporary file and renamed, so a reader never sees half of one.

``load_active`` is the one contract for finding the model in service: None when none was
ever put in service; ``ModelMismatch``, naming the path, when the store points to a
checkpoint that is missing or cannot be read. What a kind loads (and what else it checks,
such as the encoders it was trained on) is up to its ``load`` function.
"""

from __future__ import annotations

import hashlib
import logging
import pickle
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch

from congruence.core.errors import ModelMismatch
from congruence.core.settings import Settings
from congruence.store.records import Store

logger = logging.getLogger(__name__)
T = TypeVar("T")
# what torch.load and a kind's reader raise on a file that is not (or no longer) a checkpoint of that kind
_UNREADABLE = (OSError, EOFError, KeyError, ValueError, RuntimeError, pickle.UnpicklingError)


@dataclass(frozen=True)
class ModelKind:
    """name: how messages call it; active_key / previous_key: store_meta keys of the version in
    service and of the one before it (None: not kept); folder: under ``models_dir``;
    missing: the message when the active version has no checkpoint ({version}, {path});
    retrain: what to run to get a working one."""

    name: str
    active_key: str
    folder: str
    missing: str
    retrain: str
    previous_key: str | None = None


HEAD = ModelKind(
    name="congruence head",
    active_key="head_version",
    previous_key="head_previous",
    folder="heads",
    missing="the active congruence head {version} has no checkpoint at {path}; retrain with `congruence train`",
    retrain="retrain with `congruence train`",
)
ENGAGEMENT = ModelKind(
    name="engagement model",
    active_key="engagement_version",
    folder="engagement",
    missing="the engagement model {version} has no checkpoint at {path}; run `congruence engagement train`",
    retrain="run `congruence engagement train`",
)


def weights_hash(state: Mapping[str, torch.Tensor]) -> str:
    """Short sha256 of a state dict: same weights, same hash, on any device."""
    h = hashlib.sha256()
    for name, tensor in sorted(state.items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:12]


def new_version(state: Mapping[str, torch.Tensor]) -> str:
    """'20250101T120000Z-0123456789ab': when it was saved (UTC) and what it holds."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + weights_hash(state)


def checkpoint_path(settings: Settings, kind: ModelKind, version: str) -> Path:
    return settings.models_dir / kind.folder / f"{version}.pt"


def load_payload(path: Path, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load(weights_only=True)`` of a checkpoint; a file that is not one (truncated,
    corrupt, another format) is a ValueError naming it, not torch's traceback."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except (EOFError, RuntimeError, pickle.UnpicklingError) as e:
        if isinstance(e, RuntimeError) and "cuda" in str(e).lower():  # the device failed, not the file
            raise
        raise ValueError(
            f"{path}: not a checkpoint torch can read (corrupt, truncated, or not a "
            f"checkpoint at all; {type(e).__name__})"
        ) from e


def save_atomic(payload: Mapping[str, Any], path: Path) -> None:
    """``torch.save`` to ``path`` through a temporary file in the same folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        torch.save(dict(payload), tmp)
        tmp.replace(path)  # a reader never sees a half-written checkpoint
    finally:
        tmp.unlink(missing_ok=True)  # left only by a failed save


def active_version(store: Store, kind: ModelKind) -> str | None:
    """The version in service, or None when none was ever put in service."""
    return store.meta().get(kind.active_key) or None


def activate(store: Store, kind: ModelKind, version: str) -> str | None:
    """Put ``version`` in service (inside the caller's transaction, if any); returns the
    version it replaces, None when there was none (or it was the same)."""
    previous = active_version(store, kind)
    store.set_meta(kind.active_key, version)
    if previous == version:
        return None
    if previous and kind.previous_key:
        store.set_meta(kind.previous_key, previous)
    return previous


def load_active(settings: Settings, store: Store, kind: ModelKind, load: Callable[[Path], T]) -> T | None:
    """The model of ``kind`` in service, read by ``load``; None when none was put in service.

    ModelMismatch when its checkpoint is missing or unreadable; ``load``'s own ModelMismatch
    (an older format, other encoders) passes through as it is.
    """
    version = active_version(store, kind)
    return None if version is None else load_version(settings, kind, version, load)


def load_version(settings: Settings, kind: ModelKind, version: str, load: Callable[[Path], T]) -> T:
    """The model of ``kind`` saved as ``version``, read by ``load``; errors as ``load_active``'s."""
    path = checkpoint_path(settings, kind, version)
    if not path.is_file():
        raise ModelMismatch(kind.missing.format(version=version, path=path))
    try:
        return load(path)
    except torch.OutOfMemoryError:
        raise
    except _UNREADABLE as e:
        raise ModelMismatch(f"the active {kind.name} {version} cannot be read from {path} ({e}); {kind.retrain}") from e
