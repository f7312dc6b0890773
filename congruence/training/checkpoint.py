"""Saving and loading a ``CongruenceHead``.

A checkpoint is a plain dict of strings, numbers, lists and tensors, so that it loads
with ``torch.load(weights_only=True)``: no pickled code runs on load.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import torch

from congruence.training.lifecycle import load_payload, new_version, save_atomic
from congruence.training.model import CongruenceHead, HeadConfig, MetaValue

logger = logging.getLogger(__name__)

FORMAT = "congruence-head/1"


def _check_meta(meta: Mapping[str, MetaValue]) -> dict[str, MetaValue]:
    out: dict[str, MetaValue] = {}
    for key, value in meta.items():
        if not isinstance(key, str) or not (value is None or isinstance(value, (str, int, float, bool))):
            raise ValueError(f"meta[{key!r}]: expected a string, number, bool or None")
        out[key] = value
    return out


def save_head(model: CongruenceHead, path: str | Path, meta: Mapping[str, MetaValue] | None = None) -> str:
    """Write ``model`` to ``path``; sets and returns ``model.version`` (UTC time + weights hash).

    ``meta`` carries what the head cannot know, e.g. {"image_encoder": ..., "text_encoder": ...}.
    """
    merged = {**model.meta, **_check_meta(meta or {})}
    version = new_version(model.state_dict())
    payload: dict[str, Any] = {
        "format": FORMAT,
        "config": asdict(model.config),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "categories": list(model.categories),
        "train_brands": list(model.train_brands),
        "meta": merged,
        "version": version,
    }
    path = Path(path)
    save_atomic(payload, path)
    model.meta, model.version = merged, version
    logger.info("saved congruence head %s to %s", version, path)
    return version


def load_head(path: str | Path, map_location: str | torch.device = "cpu") -> CongruenceHead:
    """Read a checkpoint written by ``save_head``; the head is in eval mode."""
    payload = load_payload(Path(path), map_location)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path}: not a congruence head checkpoint ({FORMAT})")
    known = {f.name for f in fields(HeadConfig)}
    config = HeadConfig(**{k: v for k, v in payload["config"].items() if k in known})
    model = CongruenceHead(config, categories=payload["categories"])
    state = dict(payload["state_dict"])
    # the partner memory's buffers are sized by what training left; checkpoints from before it have none
    empty = {k: v for k, v in model.state_dict().items() if k.startswith("mem_")}
    for key, value in empty.items():
        state.setdefault(key, value)
    model.set_memory(
        state["mem_posts"], state["mem_post_owner"], state["mem_partners"], state["mem_partner_owner"], 0.0
    )
    model.load_state_dict(state)
    model.train_brands = tuple(payload["train_brands"])
    model.meta = dict(payload["meta"])
    model.version = str(payload["version"])
    model.to(map_location)
    return model.eval()
