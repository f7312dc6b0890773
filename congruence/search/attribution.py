"""Attribution of a brand–image congruence score to the image's pixels.

The explained function maps an image tensor to the score the product ranks by: with a
trained head, the head's score of the brand against a one-post influencer made of this
image (and its caption, held fixed); without one, the cosine of the brand's pooled vector
with the image's pooled features. Methods (captum):

    gradcam               Grad-CAM on the image encoder's last convolutional layer (fast)
    integrated_gradients  Integrated Gradients at the same layer, from a grey image (slower;
                          attributions add up to the score difference)
    occlusion             Score drop when 56 px patches are greyed out (slowest, model-agnostic)

Every method returns an (H, W) float32 map at the encoder's input size; higher = the
region raises the score. Grad-CAM maps are >= 0; the others are signed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from congruence.training.model import CongruenceHead

METHODS = ("gradcam", "integrated_gradients", "occlusion")
# part of every cache key: bump when a method's computation changes
ALGORITHM_VERSION = "2"
HEAVY = frozenset({"integrated_gradients", "occlusion"})
ScoreFn = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class BrandSide:
    """What the brand contributes to the score, fixed while attributing.

    head + posts (Pb, d) per-post head projections, or pooled (d_image + d_text,) when no
    head is in service. caption: (d_text,) L2-normalised text embedding of the image's
    caption, or zeros.
    """

    caption: np.ndarray
    head: CongruenceHead | None = None
    posts: np.ndarray | None = None
    pooled: np.ndarray | None = None


def score_function(features: Callable[[torch.Tensor], torch.Tensor], brand: BrandSide) -> ScoreFn:
    """x (N, 3, S, S) preprocessed images -> (N,) congruence scores, differentiable in x."""
    caption = torch.from_numpy(np.asarray(brand.caption, np.float32))

    def rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        img = F.normalize(features(x), dim=-1)
        return img, caption.to(img.device).expand(img.shape[0], -1)

    if brand.head is not None and brand.posts is not None:
        head = brand.head
        posts = torch.from_numpy(np.asarray(brand.posts, np.float32))

        def head_score(x: torch.Tensor) -> torch.Tensor:
            img, txt = rows(x)
            proj = head.project(torch.cat([img, txt], dim=-1).to(head.device))  # (N, d)
            bp = posts.to(head.device)[None]
            bmask = torch.ones(bp.shape[:2], dtype=torch.bool, device=head.device)
            cmask = torch.ones((proj.shape[0], 1), dtype=torch.bool, device=head.device)
            return head.score(bp, bmask, proj[:, None, :], cmask)[0]

        return head_score
    if brand.pooled is None:
        raise ValueError("brand: needs head + posts, or pooled")
    pooled = torch.from_numpy(np.asarray(brand.pooled, np.float32))

    def cosine(x: torch.Tensor) -> torch.Tensor:
        img, txt = rows(x)
        has_txt = (txt.abs().sum(dim=-1, keepdim=True) > 0).float()
        v = torch.cat([img * np.sqrt(0.5), F.normalize(txt, dim=-1) * np.sqrt(0.5) * has_txt], dim=-1)
        return F.normalize(v, dim=-1) @ pooled.to(v.device)

    return cosine


def attribute(fn: ScoreFn, x: torch.Tensor, method: str, layer: torch.nn.Module) -> np.ndarray:
    """(S, S) float32 attribution map of ``fn`` at the single image ``x`` (1, 3, S, S)."""
    from captum.attr import LayerAttribution, LayerGradCam, LayerIntegratedGradients, Occlusion

    if method not in METHODS:
        raise ValueError(f"method: expected one of {', '.join(METHODS)}, got {method!r}")
    x = x.detach().clone().requires_grad_(True)
    size = x.shape[-2:]
    if method == "gradcam":
        cam = LayerGradCam(fn, layer).attribute(x, relu_attributions=True)
        out = LayerAttribution.interpolate(cam, tuple(size), interpolate_mode="bilinear")
    elif method == "integrated_gradients":
        # At the last convolutional layer, from a mid-grey image (zeros after the encoders'
        # normalisation). Pixel-level IG from grey pointed at the wrong half of 86 % of
        # composites: normalised, globally pooled features make every pixel's path gradient
        # depend on the whole image; at the layer, attributions stay with their region.
        lig = LayerIntegratedGradients(fn, layer)
        cam = lig.attribute(x, baselines=torch.zeros_like(x), n_steps=24, internal_batch_size=8)
        out = LayerAttribution.interpolate(cam.sum(dim=1, keepdim=True), tuple(size), interpolate_mode="bilinear")
    else:
        with torch.no_grad():
            out = (
                Occlusion(fn)
                .attribute(
                    x, sliding_window_shapes=(3, 56, 56), strides=(3, 28, 28), baselines=0.0, perturbations_per_eval=16
                )
                .sum(dim=1, keepdim=True)
            )
    return out.detach()[0, 0].float().cpu().numpy()


def resize_map(heat: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of an (S, S) map to the original image's (height, width), float32."""
    t = torch.from_numpy(np.ascontiguousarray(heat, np.float32))[None, None]
    return F.interpolate(t, size=(height, width), mode="bilinear", align_corners=False)[0, 0].numpy()


def positive_share(heat: np.ndarray, region: np.ndarray) -> float:
    """Share of the map's positive mass inside the boolean ``region`` (0.5 for an all-zero map)."""
    pos = np.clip(heat, 0, None)
    total = float(pos.sum())
    return 0.5 if total <= 0 else float(pos[region].sum() / total)
