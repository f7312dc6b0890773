"""The bulk export's ``in_lists`` column: for each (brand, influencer) row, the campaign lists of
that brand holding the influencer, ``name:status`` and ';'-separated (``spring:contacted``;
empty for none), read once when the export starts (``store.list_views.brand_lists``), as the
match answers mark an influencer already in a list of the brand (docs/lists.md)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pyarrow as pa

from congruence.store.list_views import brand_lists
from congruence.store.records import Store


@dataclass(frozen=True)
class ListColumns:
    """texts: brand id -> influencer id -> its ``in_lists`` text (brands with no list: absent)."""

    texts: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    @classmethod
    def of(cls, store: Store, brand_ids: Sequence[str]) -> ListColumns:
        return cls(brand_lists(store, brand_ids))

    def text(self, brand_id: str, influencer_id: str) -> str:
        return self.texts.get(brand_id, {}).get(influencer_id, "")

    def array(self, brand_ids: Sequence[str], influencer_ids: Sequence[str]) -> pa.Array:
        return pa.array([self.text(b, i) for b, i in zip(brand_ids, influencer_ids, strict=True)], pa.string())
