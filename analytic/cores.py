"""How many cores this process may use, and a bounded way for one request to use two.

A verification embeds two recordings. Run one after the other, a lone request leaves the second
core idle (issue 17: the server never used more than 1.4 of 2 cores). ``CoreShare.both`` runs
the two halves side by side, but only while a core is free: it holds one token per running half,
out of one per core, so under load (every core already serving a request) a pair runs on its own
thread as before and nothing waits behind borrowed cores. Results do not depend on which thread
computed them; a failure of the first half is raised before one of the second, as when run in
order.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from typing import TypeVar

In = TypeVar("In")
Out = TypeVar("Out")


def available_cores() -> int:
    """The cores this process may run on (its affinity mask, as containers set it), else every
    core of the machine."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class CoreShare:
    """One token per core; ``both`` borrows a second core only when a token is free."""

    def __init__(self, cores: int) -> None:
        self.cores = max(1, cores)
        self._tokens = threading.BoundedSemaphore(self.cores)
        self._pool = (ThreadPoolExecutor(self.cores - 1, thread_name_prefix="pair-half")
                      if self.cores > 1 else None)

    def both(self, work: Callable[[In], Out], first: In, second: In) -> tuple[Out, Out]:
        """``(work(first), work(second))``, side by side when a core is free."""
        own = self._tokens.acquire(blocking=False)
        helper = own and self._pool is not None and self._tokens.acquire(blocking=False)
        try:
            if not helper:
                return work(first), work(second)
            assert self._pool is not None
            future = self._pool.submit(work, second)
            try:
                result = work(first)
            finally:
                wait([future])  # the borrowed core is given back only once it is done
            return result, future.result()
        finally:
            for held in (own, helper):
                if held:
                    self._tokens.release()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False)
