"""The brand-safety categories: those of the GARM brand-safety floor and suitability
framework (Global Alliance for Responsible Media, 2020) that Instagram posts meet most.

Each category says what it covers, the short descriptions a caption's embedding is compared
with, and the ImageNet classes of the default image encoder that show it. The word lists
are in ``lexicon``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from congruence.core.errors import InvalidInput


@dataclass(frozen=True)
class Category:
    """name: the id used by flags, filters and the API; garm: the GARM categories it follows;
    descriptions: sentences a caption embedding is compared with; image_classes: ImageNet
    class names (torchvision's spelling) whose prediction flags an image."""

    name: str
    garm: str
    descriptions: tuple[str, ...]
    image_classes: tuple[str, ...]


CATEGORIES: dict[str, Category] = {
    c.name: c
    for c in (
        Category(
            "adult",
            "adult & explicit sexual content",
            ("sexual content, nudity and porn", "an explicit sexy photo of a naked body in lingerie"),
            ("bikini", "brassiere", "maillot", "swimming trunks"),
        ),
        Category(
            "arms",
            "arms & ammunition",
            ("guns, rifles, pistols and ammunition", "shooting firearms at a gun range"),
            ("assault rifle", "rifle", "revolver", "holster", "cannon", "missile", "projectile"),
        ),
        Category(
            "drugs",
            "illegal drugs, tobacco, e-cigarettes, vaping, alcohol",
            (
                "drinking beer, wine, cocktails and alcohol",
                "smoking cigarettes, vaping or smoking weed",
                "getting drunk at a party with shots of vodka",
            ),
            ("beer bottle", "wine bottle", "beer glass", "red wine", "whiskey jug", "cocktail shaker"),
        ),
        Category(
            "hate_profanity",
            "hate speech & acts of aggression; obscenity and profanity",
            ("racist slurs and hateful insults", "swearing and vulgar curse words"),
            (),
        ),
        Category(
            "violence",
            "death, injury or military conflict; crime and harmful acts",
            (
                "a violent murder, killing and blood",
                "war, soldiers and military conflict",
                "mourning a death at a funeral",
            ),
            ("guillotine", "tank", "warplane", "half track"),
        ),
    )
}
NAMES: tuple[str, ...] = tuple(CATEGORIES)


def check_categories(values: Iterable[str] | None) -> tuple[str, ...]:
    """The category names, lower-cased, in ``NAMES`` order (an item may hold several, separated
    by commas); an unknown one is refused."""
    if values is None:
        return ()
    items = [] if isinstance(values, str) else list(values)
    if isinstance(values, str) or any(not isinstance(v, str) for v in items):
        raise InvalidInput("expects a list of category names", field="exclude_categories")
    # "adult,arms" in one item, as a form field or a query parameter carries them
    got = {p.strip().lower() for v in items for p in v.split(",") if p.strip()}
    bad = sorted(got - set(NAMES))
    if bad:
        raise InvalidInput(
            f"names an unknown safety category {bad[0]!r}: expected one of {', '.join(NAMES)}",
            field="exclude_categories",
        )
    return tuple(n for n in NAMES if n in got)
