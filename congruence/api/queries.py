"""New-brand searches kept for a while, so their results can be explained without re-uploading."""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict

from congruence.core.errors import NotFound
from congruence.search.engine import BrandQuery

MAX_QUERIES = 256
TTL_SECONDS = 3600.0


class QueryCache:
    """A bounded, expiring map from query id to the encoded brand (a few tens of KB each): its
    query, and the encoder outputs it was built from (``BrandQuery.images``, ``text``), which a
    saved search keeps to rebuild the query for whichever head serves when it runs."""

    def __init__(self, max_items: int = MAX_QUERIES, ttl: float = TTL_SECONDS):
        self.max_items, self.ttl = max_items, ttl
        self._items: OrderedDict[str, tuple[float, BrandQuery]] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, query: BrandQuery) -> str:
        query_id = secrets.token_hex(8)
        with self._lock:
            self._items[query_id] = (time.monotonic(), query)
            while len(self._items) > self.max_items:
                self._items.popitem(last=False)
        return query_id

    def get(self, query_id: str) -> BrandQuery:
        with self._lock:
            item = self._items.get(query_id)
            if item is None or time.monotonic() - item[0] > self.ttl:
                self._items.pop(query_id, None)
                raise NotFound(f"unknown or expired search {query_id!r}: run the search again")
            return item[1]
