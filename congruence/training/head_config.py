"""The congruence head's architecture: ``HeadConfig`` (see ``model.CongruenceHead``)."""

from __future__ import annotations

from dataclasses import dataclass

from congruence.core.errors import InvalidInput

POOLINGS = ("attention", "mean")
TOWERS = ("shared", "two")
MetaValue = str | int | float | bool | None


@dataclass(frozen=True)
class HeadConfig:
    """Architecture of a ``CongruenceHead``.

    temperature: softmax temperature of the set-to-set term (lower = closer to a hard max
        over the influencer's posts).
    init_scale: initial weight of both similarity terms; list-wise losses take a softmax
        over scores, so this is also the initial inverse temperature of that softmax.
    towers: ``shared`` (one projection and pooling for both sides) or ``two`` (the brand side
        adds a residual adapter to the projection and a residual to the pooling query).
        Checkpoints from before towers existed load as ``shared``.
    memory_temperature: softmax temperature over the partner memory's brands (see
        ``model.CongruenceHead.set_memory``; lower = only the brands that post most alike).
    memory_top: how many memory brands (those that post most like the brand) a score uses.
    """

    d_image: int
    d_text: int
    d_model: int = 256
    d_hidden: int = 512
    pooling: str = "attention"
    n_categories: int = 0
    dropout: float = 0.1
    temperature: float = 0.1
    init_scale: float = 5.0
    towers: str = "shared"
    memory_temperature: float = 0.03
    memory_top: int = 8

    def __post_init__(self) -> None:
        if self.pooling not in POOLINGS:
            raise InvalidInput(f"must be attention or mean, got {self.pooling!r}", field="pooling")
        if self.towers not in TOWERS:
            raise InvalidInput(f"must be shared or two, got {self.towers!r}", field="towers")
        if self.d_image < 0 or self.d_text < 0 or self.d_image + self.d_text < 1:
            raise InvalidInput(
                f"and d_text must be at least 1 together, got {self.d_image} + {self.d_text}", field="d_image"
            )
        for name, low in (("d_model", 1), ("d_hidden", 1), ("n_categories", 0), ("memory_top", 1)):
            if getattr(self, name) < low:
                raise InvalidInput(f"must be at least {low}, got {getattr(self, name)!r}", field=name)
        if not 0.0 <= self.dropout < 1.0:
            raise InvalidInput(f"must be from 0 up to 1, got {self.dropout!r}", field="dropout")
        for name in ("temperature", "memory_temperature"):
            if getattr(self, name) <= 0.0:
                raise InvalidInput(f"must be positive, got {getattr(self, name)!r}", field=name)

    @property
    def d_in(self) -> int:
        return self.d_image + self.d_text
