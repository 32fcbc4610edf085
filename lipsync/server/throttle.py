"""Slow down clients that keep failing authentication (wrong keys, link signatures or media tokens).

A leaky bucket per client address, in memory: each failure adds one, and one drains away every `decay`
seconds. A client whose bucket is full gets 429 with Retry-After before its key is even looked at, so
guessing runs at `1 / decay` per second at most. Other clients are not affected; successes cost nothing.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from typing import Optional

_MAX_CLIENTS = 10_000  # addresses remembered; the oldest are forgotten first


class AuthThrottle:
    def __init__(self, burst: int, decay: float):
        self.burst, self.decay = max(1, burst), max(1e-3, decay)
        self._levels: OrderedDict[str, tuple[float, float]] = OrderedDict()  # client → (level, when)
        self._lock = threading.Lock()

    def _level(self, client: str, now: float) -> float:
        level, when = self._levels.get(client, (0.0, now))
        return max(0.0, level - (now - when) / self.decay)

    def retry_after(self, client: str) -> Optional[int]:
        """Seconds until `client` may try again, or None if it may try now."""
        with self._lock:
            over = self._level(client, time.monotonic()) + 1 - self.burst
        return math.ceil(over * self.decay) if over > 0 else None

    def failed(self, client: str) -> None:
        with self._lock:
            now = time.monotonic()
            self._levels[client] = (self._level(client, now) + 1, now)
            self._levels.move_to_end(client)
            while len(self._levels) > _MAX_CLIENTS:
                self._levels.popitem(last=False)
