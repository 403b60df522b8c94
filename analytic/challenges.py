"""One-time spoken-digit challenges: issued, then consumed by their first use or forgotten.

A replayed recording cannot hold digits drawn a moment ago, so a verification that names a
challenge must also say those digits. Challenges live in memory only (a restart forgets them,
which only costs a new challenge), each is usable once whatever the outcome (an attacker gets
one guess per challenge), and they expire. Ids and digits come from ``secrets``.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from analytic.errors import Busy, NotFound


class TooManyChallenges(Busy):
    retry_after_s = 1


@dataclass(frozen=True)
class IssuedChallenge:
    challenge_id: str
    digits: str  # "4719"
    external_id: str | None  # the member it was asked for, if any
    expires_at: float  # monotonic clock
    ttl_s: float


class ChallengeRegistry:
    """Thread-safe: issue, and take (consume) once."""

    def __init__(self, length: int, ttl_s: float, max_open: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.length = length
        self.ttl_s = ttl_s
        self.max_open = max_open
        self._clock = clock
        self._open: OrderedDict[str, IssuedChallenge] = OrderedDict()
        self._lock = threading.Lock()

    def issue(self, external_id: str | None = None, length: int | None = None) -> IssuedChallenge:
        digits = "".join(secrets.choice("0123456789") for _ in range(length or self.length))
        now = self._clock()
        challenge = IssuedChallenge(secrets.token_urlsafe(18), digits, external_id,
                                    now + self.ttl_s, self.ttl_s)
        with self._lock:
            self._expire(now)
            if len(self._open) >= self.max_open:
                raise TooManyChallenges(f"{self.max_open} challenges are open; try again later")
            self._open[challenge.challenge_id] = challenge
        return challenge

    def take(self, challenge_id: str) -> IssuedChallenge:
        """The challenge, removed: a second use, an unknown or an expired id is 404."""
        with self._lock:
            self._expire(self._clock())
            challenge = self._open.pop(challenge_id, None)
        if challenge is None:
            raise NotFound("unknown, expired or already used challenge_id")
        return challenge

    def _expire(self, now: float) -> None:
        # Issued in order with one ttl, so the oldest expire first.
        while self._open:
            oldest = next(iter(self._open.values()))
            if oldest.expires_at > now:
                break
            self._open.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            self._expire(self._clock())
            return len(self._open)
