"""The congruence head's architecture: ``HeadConfig`` (see ``model.CongruenceHead``)."""

from __future__ import annotations

from dataclasses import dataclass

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

    def __post_init__(self) -> None:
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling: expected attention or mean, got {self.pooling!r}")
        if self.towers not in TOWERS:
            raise ValueError(f"towers: expected shared or two, got {self.towers!r}")
        if self.d_image < 0 or self.d_text < 0 or self.d_image + self.d_text < 1:
            raise ValueError("d_image + d_text: must be at least 1")
        if self.d_model < 1 or self.d_hidden < 1 or self.n_categories < 0:
            raise ValueError("d_model and d_hidden: must be at least 1; n_categories: at least 0")
        if not 0.0 <= self.dropout < 1.0 or self.temperature <= 0.0:
            raise ValueError("dropout: must be in [0, 1); temperature: must be positive")

    @property
    def d_in(self) -> int:
        return self.d_image + self.d_text
