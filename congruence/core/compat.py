"""Make the CPU-only torch build and torchvision 0.28 import together.

The local CPU torch wheel (2.13.0+cpu) ships without the C++ ops that torchvision's
compiled extension would normally register, and torchvision's Python side registers
fake kernels for ``torchvision::nms`` and ``torchvision::qnms`` at import time, which
fails when those op schemas do not exist. Defining the two schemas (no kernels) is
enough for torchvision to import; nothing in congruence calls them.

Only active when the schemas are missing: on a host with a full torchvision build (the
GPU machines), :func:`ensure_torchvision` does nothing.
"""

from __future__ import annotations

import logging

import torch

logger = logging.getLogger(__name__)
_done = False


def _has_op(name: str) -> bool:
    try:
        torch._C._dispatch_find_schema_or_throw(name, "")
        return True
    except RuntimeError:
        return False


def ensure_torchvision() -> None:
    """Define the missing torchvision op schemas once, if and only if they are absent."""
    global _done
    if _done:
        return
    _done = True
    if _has_op("torchvision::nms"):
        return
    lib = torch.library.Library("torchvision", "DEF")  # noqa: TOR901 - schema only, no kernel
    lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    # keep the library object alive: dropping it would unregister the schemas
    globals()["_torchvision_lib"] = lib
    logger.debug("defined torchvision::nms/qnms schemas for a CPU-only torch build")
