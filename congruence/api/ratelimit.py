"""Per-key rate limits: a token bucket per API key, in this process."""

from __future__ import annotations

import threading
import time


class RateLimiter:
    """``per_minute`` requests a minute per key, in bursts of up to a tenth of that (at least 10)."""

    def __init__(self, per_minute: int):
        self.rate = per_minute / 60.0
        self.burst = float(max(10, per_minute // 10))
        self._buckets: dict[str, tuple[float, float]] = {}  # key id -> (tokens, time)
        self._lock = threading.Lock()

    def take(self, key_id: str) -> float:
        """0 when the request may go ahead, else the seconds to wait before the next one."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic()
        with self._lock:
            tokens, then = self._buckets.get(key_id, (self.burst, now))
            tokens = min(self.burst, tokens + (now - then) * self.rate)
            if tokens >= 1.0:
                self._buckets[key_id] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key_id] = (tokens, now)
            return (1.0 - tokens) / self.rate
