"""Remember recent request ids so a redelivered request is answered once.

QoS 1 means "at least once": the broker resends a request whose acknowledgement it did not see
(reconnects, broker restarts), and requesters retry. Without this, a retry would produce a
second decision with a new ``analysis_id``.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable

MAX_REMEMBERED = 100_000  # bounds memory whatever the window and the request rate


class RecentRequests:
    """Thread-safe "seen within the last ``window_s`` seconds" set."""

    def __init__(self, window_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._window_s = window_s
        self._clock = clock
        self._seen: OrderedDict[Hashable, float] = OrderedDict()
        self._lock = threading.Lock()

    def first_time(self, key: Hashable) -> bool:
        """``True`` the first time ``key`` is offered within the window, ``False`` after."""
        if self._window_s <= 0:
            return True
        now = self._clock()
        with self._lock:
            while self._seen and (
                len(self._seen) >= MAX_REMEMBERED
                or next(iter(self._seen.values())) <= now - self._window_s
            ):
                self._seen.popitem(last=False)
            if key in self._seen:
                return False
            self._seen[key] = now
            return True
