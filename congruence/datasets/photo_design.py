"""Who posts what and who matches whom in the photo benchmark: pure, seeded, no I/O but the CSVs.

The world, from ``photos/verticals.csv`` (100 classes in 10 verticals):

- Each vertical V splits its classes into ``core`` classes (what influencers of V are
  about: one of them is an influencer's niche) and ``product`` classes (what some brands
  photograph but influencers rarely do: the kibble to the dogs).
- A *direct* brand of V posts two or three core classes of V and matches the influencers
  of V whose niche is one of them: plain similarity finds these.
- A *cross* brand posts two product classes of a vertical A and matches influencers of
  B = CROSS_TARGET[A] whose niche is the image of those classes under a fixed class map
  (product i of A -> core i of B). Raw embeddings do not relate a product of A to a core
  class of B; a trained head can learn the map from the other brands of the same kind.
- A *look-alike* brand posts two ``lookalike`` classes of A: core classes that A's own
  influencers post (some have them as niche) but no direct brand does. Its partners are
  influencers of B = LOOKALIKE_TARGET[A] (the kitchen brand that photographs dishes and
  partners with home decorators); A's influencers who post exactly what it posts are not
  partners. One shared projection cannot rank them right: a brand post and a look-alike
  influencer's post of one class project to one point. A brand tower can.
- Brands and influencers live on one *side*, train or test, and only match on their side;
  the test side uses only split=test photos (see photo_corpus), so test brands are new
  brands with new images.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

SIDES = ("train", "test")
# product vertical -> target vertical, each with a campaign story; a derangement, so every
# vertical is the target of exactly one cross kind
CROSS_TARGET: Mapping[str, str] = {
    "food_drink": "pets",  # pet food: posts bowls and food, sells to dog and cat people
    "pets": "home_interior",  # pet-friendly furniture: posts pets, sells to home decorators
    "home_interior": "food_drink",  # kitchen fitters: post cabinets, sell to food creators
    "vehicles": "travel_outdoor",  # car makers: post cars, sell to road-trippers
    "travel_outdoor": "wildlife",  # safari tours: post destinations, sell to wildlife watchers
    "wildlife": "birds_sea",  # nature charities: post animals, sell to birders and divers
    "birds_sea": "fashion_gear",  # outdoor outfitters: post nature, sell to gear enthusiasts
    "fashion_gear": "sports_music",  # sportswear: posts gear, sells to athletes and musicians
    "sports_music": "tech_objects",  # audio brands: post instruments, sell to gadget reviewers
    "tech_objects": "vehicles",  # car electronics: post gadgets, sell to car enthusiasts
}


# look-alike kinds: the cross map applied twice, another derangement (its cycles are odd)
LOOKALIKE_TARGET: Mapping[str, str] = {a: CROSS_TARGET[CROSS_TARGET[a]] for a in CROSS_TARGET}
assert all(a != b for a, b in LOOKALIKE_TARGET.items())


@dataclass(frozen=True)
class Catalog:
    """The photo set. photos maps (label, split) to photo paths relative to the photos folder."""

    verticals: tuple[str, ...]
    classes: Mapping[str, tuple[str, ...]]
    vertical_of: Mapping[str, str]
    photos: Mapping[tuple[str, str], tuple[str, ...]]


def load_catalog(photos_dir: Path) -> Catalog:
    """Read ``labels.csv`` and ``verticals.csv``; every labelled class needs a vertical."""
    with (photos_dir / "verticals.csv").open(newline="", encoding="utf-8") as f:
        vertical_of = {r["label"]: r["vertical"] for r in csv.DictReader(f)}
    photos: dict[tuple[str, str], list[str]] = {}
    with (photos_dir / "labels.csv").open(newline="", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            if r["label"] not in vertical_of:
                raise ValueError(f"labels.csv: class {r['label']!r} has no vertical in verticals.csv")
            photos.setdefault((r["label"], r["split"]), []).append(r["path"])
    verticals = tuple(sorted(set(vertical_of.values())))
    classes = {v: tuple(sorted(c for c, w in vertical_of.items() if w == v)) for v in verticals}
    return Catalog(verticals, classes, vertical_of, {k: tuple(sorted(v)) for k, v in photos.items()})


@dataclass(frozen=True)
class Roles:
    """Classes of each vertical: core (influencer niches; ``lookalike`` ones are the last
    ``n_lookalike`` of them, posted by look-alike brands only) and product; the class maps
    of the cross and look-alike kinds (to direct core classes of the target vertical)."""

    core: Mapping[str, tuple[str, ...]]
    product: Mapping[str, tuple[str, ...]]
    class_map: Mapping[str, str]  # product class of A -> core class of CROSS_TARGET[A]
    lookalike: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    lookalike_map: Mapping[str, str] = field(default_factory=dict)  # of A -> core of LOOKALIKE_TARGET[A]

    def direct(self, vertical: str) -> tuple[str, ...]:
        """The core classes of ``vertical`` that direct brands post."""
        return tuple(c for c in self.core[vertical] if c not in self.lookalike.get(vertical, ()))


def assign_roles(catalog: Catalog, n_product: int, seed: int, n_lookalike: int = 2) -> Roles:
    """A seeded choice of ``n_product`` product classes per vertical; the rest are core, the
    last ``n_lookalike`` of which are the look-alike brands' (0: no look-alike kinds)."""
    rng = random.Random(f"roles:{seed}")
    core: dict[str, tuple[str, ...]] = {}
    product: dict[str, tuple[str, ...]] = {}
    for v in catalog.verticals:
        shuffled = list(catalog.classes[v])
        rng.shuffle(shuffled)
        if len(shuffled) < n_product + n_lookalike + 2:
            raise ValueError(f"vertical {v!r}: {len(shuffled)} classes, need at least {n_product + n_lookalike + 2}")
        product[v], core[v] = tuple(shuffled[:n_product]), tuple(shuffled[n_product:])
    lookalike = {v: core[v][len(core[v]) - n_lookalike :] if n_lookalike else () for v in catalog.verticals}
    direct = {v: core[v][: len(core[v]) - n_lookalike] for v in catalog.verticals}
    class_map, lookalike_map = {}, {}
    for a in catalog.verticals:
        for i, c in enumerate(product[a]):
            class_map[c] = direct[CROSS_TARGET[a]][i % len(direct[CROSS_TARGET[a]])]
        for i, c in enumerate(lookalike[a]):
            b = direct[LOOKALIKE_TARGET[a]]
            lookalike_map[c] = b[-1 - i % len(b)]  # from the end: other niches than the cross map's
    return Roles(core, product, class_map, lookalike, lookalike_map)


@dataclass(frozen=True)
class BrandKind:
    """posts: the vertical a brand of this kind photographs; target: whose influencers it
    wants; group: direct, cross (posts products) or lookalike (posts what ``posts``'s
    influencers post)."""

    name: str
    posts: str
    target: str

    @property
    def group(self) -> str:
        return self.name.split(":", 1)[0]

    @property
    def cross(self) -> bool:
        return self.posts != self.target


def brand_kinds(catalog: Catalog, lookalike: bool = True) -> tuple[BrandKind, ...]:
    direct = [BrandKind(f"direct:{v}", v, v) for v in catalog.verticals]
    cross = [BrandKind(f"cross:{v}>{CROSS_TARGET[v]}", v, CROSS_TARGET[v]) for v in catalog.verticals]
    alike = [BrandKind(f"lookalike:{v}>{LOOKALIKE_TARGET[v]}", v, LOOKALIKE_TARGET[v]) for v in catalog.verticals]
    return tuple(direct + cross + (alike if lookalike else []))


@dataclass(frozen=True)
class BrandPlan:
    """prefers: the classes the brand posts; targets: the influencer niches it matches."""

    id: str
    kind: BrandKind
    side: str
    prefers: tuple[str, ...]
    targets: tuple[str, ...]


@dataclass(frozen=True)
class InfluencerPlan:
    id: str
    side: str
    vertical: str
    niche: str


def plan_brands(catalog: Catalog, roles: Roles, per_kind: int, test_per_kind: int, seed: int) -> tuple[BrandPlan, ...]:
    """``per_kind`` brands of every kind, the first ``test_per_kind`` of each on the test side."""
    if not 1 <= test_per_kind < per_kind:
        raise ValueError(f"test_per_kind: expected 1 to {per_kind - 1}, got {test_per_kind}")
    rng = random.Random(f"brands:{seed}")
    out: list[BrandPlan] = []
    for kind in brand_kinds(catalog, lookalike=bool(roles.lookalike_map)):
        slug = kind.name.replace(":", "_").replace(">", "_to_")
        for j in range(per_kind):
            if kind.group == "cross":
                prefers = tuple(sorted(rng.sample(roles.product[kind.posts], 2)))
                targets = tuple(sorted({roles.class_map[c] for c in prefers}))
            elif kind.group == "lookalike":
                prefers = tuple(sorted(rng.sample(roles.lookalike[kind.posts], 2)))
                targets = tuple(sorted({roles.lookalike_map[c] for c in prefers}))
            else:
                pool = roles.direct(kind.posts)
                prefers = targets = tuple(sorted(rng.sample(pool, 2 if len(pool) <= 5 else 3)))
            side = "test" if j < test_per_kind else "train"
            out.append(BrandPlan(f"b_{slug}_{j:02d}", kind, side, prefers, targets))
    return tuple(out)


def covered_niches(brands: Sequence[BrandPlan], side: str) -> dict[str, tuple[str, ...]]:
    """Per vertical, the influencer niches of ``side`` (sorted): the core classes some brand
    targets, plus the classes look-alike brands post (their look-alikes: influencers who
    post what such a brand posts and are nobody's partner)."""
    out: dict[str, set[str]] = {}
    for b in brands:
        if b.side == side:
            out.setdefault(b.kind.target, set()).update(b.targets)
            if b.kind.group == "lookalike":
                out.setdefault(b.kind.posts, set()).update(b.prefers)
    return {v: tuple(sorted(c)) for v, c in out.items()}


def plan_influencers(
    catalog: Catalog, brands: Sequence[BrandPlan], side: str, n: int, seed: int
) -> tuple[InfluencerPlan, ...]:
    """``n`` influencers of ``side``, spread evenly over the verticals, each with a niche of
    ``covered_niches``: one some brand of the same side targets, or a look-alike's.

    Niches are dealt from a reshuffled deck per vertical rather than drawn independently,
    so that every targeted niche has influencers even in a tiny corpus.
    """
    rng = random.Random(f"influencers:{side}:{seed}")
    covered = covered_niches(brands, side)
    verticals = [v for v in catalog.verticals if v in covered]
    decks: dict[str, list[str]] = {v: [] for v in verticals}
    out = []
    for i in range(n):
        v = verticals[i % len(verticals)]
        if not decks[v]:
            decks[v] = rng.sample(covered[v], len(covered[v]))
        out.append(InfluencerPlan(f"i_{side}_{i:05d}", side, v, decks[v].pop()))
    return tuple(out)


def ground_truth(brands: Sequence[BrandPlan], influencers: Sequence[InfluencerPlan]) -> list[tuple[str, str]]:
    """(brand_id, influencer_id): same side, influencer of the target vertical, niche targeted."""
    by_key: dict[tuple[str, str, str], list[str]] = {}
    for inf in influencers:
        by_key.setdefault((inf.side, inf.vertical, inf.niche), []).append(inf.id)
    pairs = []
    for b in brands:
        for c in b.targets:
            pairs += [(b.id, i) for i in by_key.get((b.side, b.kind.target, c), [])]
    return sorted(pairs)
