"""Suggestions with their evidence: only concepts whose effect held up on held-out accounts.

``SuggestionBank`` is what the engagement model keeps (in its checkpoint) from the evidence
test at training time: every concept tested, which qualified, and what it takes to check an
uploaded image. An image gets a concept only when

- the concept qualified (``evidence``: its simultaneous interval on held-out accounts is above 0);
- it can be seen in an upload: image concepts and brightness can, alt-text concepts cannot;
- the image does not already show it (is not already bright);
- it can plausibly be added to this kind of image: the corpus shows it together with one of
  the image's own top concepts (``candidates.anchors``). Brightness can be added to any picture.

When none is left, one sentence says why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from congruence.engagement.candidates import BRIGHTNESS
from congruence.engagement.concepts import ConceptBank
from congruence.engagement.evidence import Effect, Evidence

NOTHING_QUALIFIES = (
    "No suggestion: no concept's effect on engagement held up on the accounts held out from "
    "training (an interval excluding zero), so nothing is suggested."
)
MAX_PER_IMAGE = 3


@dataclass(frozen=True)
class Suggestion:
    """A qualified concept for one image, with its evidence and why it fits the image."""

    effect: Effect
    reason: str

    def text(self) -> str:
        """'posts showing people score +0.60 (+0.30 to +0.90) on the account's scale, 410 posts, 190 accounts'."""
        return f"{claim(self.effect)} ({self.reason})"

    def to_dict(self) -> dict[str, Any]:
        e = self.effect
        return {
            "concept": e.name,
            "label": label(e),
            "kind": e.kind,
            "lift": round(e.lift, 3),
            "ci95": [round(e.low, 3), round(e.high, 3)],
            "posts": e.posts,
            "accounts": e.accounts,
            "reason": self.reason,
            "text": self.text(),
        }


def label(e: Effect) -> str:
    """What to add: the concept, or "a brighter picture"."""
    return "a brighter picture" if e.kind == "property" and e.name == BRIGHTNESS else e.name


def subject(e: Effect) -> str:
    if e.kind == "property" and e.name == BRIGHTNESS:
        return "brighter pictures"
    return f"posts showing {e.name}"


def claim(e: Effect) -> str:
    """What the evidence says of a concept, with its interval and support, in one clause."""
    return (
        f"{subject(e)} score {e.lift:+.2f} ({e.low:+.2f} to {e.high:+.2f}) on the account's scale; "
        f"{e.posts:,} posts, {e.accounts:,} accounts held out from training"
    )


@dataclass(frozen=True)
class SuggestionBank:
    """evidence: every concept tested at training time; bank: the image concepts (only when one
    of them qualified); anchors: qualified image concept -> [(anchor concept index, share)];
    bright_threshold: the median training brightness that "brighter" is measured against."""

    evidence: Evidence
    bank: ConceptBank | None = None
    anchors: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    bright_threshold: float | None = None

    @property
    def qualified(self) -> list[Effect]:
        return self.evidence.qualified

    def for_images(self, image_emb: np.ndarray, bright: np.ndarray) -> list[tuple[list[Suggestion], str]]:
        """Per image (rows of ``image_emb``, (n,) ``bright``): its suggestions, best lift first, and
        the sentence that says why there are none ('' when there are)."""
        shown = self.bank.shown(image_emb) if self.bank is not None else np.zeros((len(bright), 0), np.int64)
        out = []
        for i in range(len(bright)):
            found: list[Suggestion] = []
            why: list[str] = []
            for e in self.qualified:
                s, reason = self._one(e, [int(d) for d in shown[i]], float(bright[i]))
                if s is None:
                    why.append(reason)
                else:
                    found.append(s)
            out.append((found[:MAX_PER_IMAGE], "" if found else self._none(why)))
        return out

    def _one(self, e: Effect, shown: list[int], bright: float) -> tuple[Suggestion | None, str]:
        if e.kind == "property" and e.name == BRIGHTNESS and self.bright_threshold is not None:
            if bright >= self.bright_threshold:
                return None, (
                    f"it is already at least as bright as the corpus median ({bright:.1%} vs "
                    f"{self.bright_threshold:.1%})"
                )
            return Suggestion(
                e, f"this image {bright:.0%} brightness, the corpus median {self.bright_threshold:.0%}"
            ), ""
        if e.kind != "image" or self.bank is None:
            return None, f"{e.name} was measured on Instagram's alt text, which an uploaded image does not have"
        index = self.bank.names.index(e.name)
        if index in shown:
            return None, f"it already shows {e.name}"
        anchor = next(((d, share) for d, share in self.anchors.get(e.name, []) if d in shown), None)
        if anchor is None:
            seen = ", ".join(self.bank.names[d] for d in shown[:3])
            return None, f"{e.name} is not seen in the corpus with what this image shows ({seen})"
        d, share = anchor
        return Suggestion(
            e, f"the corpus shows it in {share:.0%} of posts showing {self.bank.names[d]}, as this image does"
        ), ""

    def _none(self, why: list[str]) -> str:
        if not self.qualified:
            return NOTHING_QUALIFIES
        named = ", ".join(e.name for e in self.qualified)
        return (
            f"No suggestion for this image: of the concepts with a measured effect ({named}), none fits it: "
            + "; ".join(dict.fromkeys(why))
            + "."
        )

    def to_payload(self) -> dict[str, Any]:
        """Plain values and tensors (``torch.load(weights_only=True)``)."""
        ev = self.evidence
        return {
            "effects": [
                [
                    e.name,
                    e.kind,
                    e.lift,
                    e.low,
                    e.high,
                    e.posts,
                    e.accounts,
                    e.train_lift,
                    e.train_posts,
                    e.train_accounts,
                ]
                for e in ev.effects
            ],
            "screened": ev.screened,
            "level": ev.level,
            "n_boot": ev.n_boot,
            "bank_names": list(self.bank.names) if self.bank else [],
            "bank": torch.from_numpy(self.bank.vectors.astype(np.float16)) if self.bank else torch.zeros(0),
            "anchors": {k: [[d, s] for d, s in v] for k, v in self.anchors.items()},
            "bright_threshold": self.bright_threshold,
        }

    @classmethod
    def from_payload(cls, p: dict[str, Any]) -> SuggestionBank:
        effects = [
            Effect(
                str(r[0]),
                str(r[1]),
                float(r[2]),
                float(r[3]),
                float(r[4]),
                int(r[5]),
                int(r[6]),
                float(r[7]),
                int(r[8]),
                int(r[9]),
            )
            for r in p["effects"]
        ]
        names = list(p["bank_names"])
        bank = ConceptBank(names, p["bank"].float().numpy()) if names else None
        anchors = {str(k): [(int(d), float(s)) for d, s in v] for k, v in p["anchors"].items()}
        thr = p["bright_threshold"]
        return cls(
            Evidence(effects, int(p["screened"]), float(p["level"]), int(p["n_boot"])),
            bank,
            anchors,
            None if thr is None else float(thr),
        )
