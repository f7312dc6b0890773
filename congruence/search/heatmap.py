"""Drawing an attribution map over its image."""

from __future__ import annotations

import numpy as np
from PIL import Image

# a compact "jet"-like ramp: dark blue -> cyan -> yellow -> red
_STOPS = np.array([[0, 0, 96], [0, 96, 255], [0, 255, 255], [255, 255, 0], [255, 64, 0], [192, 0, 0]], np.float32)


def colorize(heat: np.ndarray) -> np.ndarray:
    """(H, W) map -> (H, W, 3) uint8 colours; the positive part is scaled to [0, 1] by its max."""
    pos = np.clip(np.asarray(heat, np.float32), 0, None)
    top = float(pos.max())
    t = pos / top if top > 0 else pos
    pos_f = t * (len(_STOPS) - 1)
    lo = np.floor(pos_f).astype(int).clip(0, len(_STOPS) - 2)
    frac = (pos_f - lo)[..., None]
    return (_STOPS[lo] * (1 - frac) + _STOPS[lo + 1] * frac).astype(np.uint8)


def overlay(image: Image.Image, heat: np.ndarray, alpha: float = 0.5) -> Image.Image:
    """The image with the coloured map blended over it; ``heat`` has the image's (H, W)."""
    rgb = image.convert("RGB")
    if heat.shape != (rgb.height, rgb.width):
        raise ValueError(f"heat: expected shape ({rgb.height}, {rgb.width}), got {heat.shape}")
    return Image.blend(rgb, Image.fromarray(colorize(heat)), alpha)
