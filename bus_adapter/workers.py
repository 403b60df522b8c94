"""A small bounded worker pool for bus requests.

Requests are served here, never on paho's network thread: a verification takes a few hundred
milliseconds and the network thread must keep answering pings and acknowledgements meanwhile.
The queue is bounded so a flood of requests is refused (``busy``) rather than piling up in
memory; ``concurrent.futures`` has no bounded queue, hence this class.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

Task = Callable[[], None]
_STOP: Task = lambda: None  # noqa: E731 - a sentinel that is also a valid task


class WorkerPool:
    """``workers`` threads draining a queue of at most ``queue_size`` waiting tasks."""

    def __init__(self, workers: int, queue_size: int, name: str = "bus-worker") -> None:
        self._queue: queue.Queue[Task] = queue.Queue(maxsize=queue_size)
        self._threads = [
            threading.Thread(target=self._run, name=f"{name}-{i}", daemon=True)
            for i in range(workers)
        ]
        self._started = False

    def start(self) -> None:
        if not self._started:
            self._started = True
            for thread in self._threads:
                thread.start()

    def submit(self, task: Task) -> bool:
        """Queue a task; ``False`` (at once, never blocking) when the queue is full."""
        try:
            self._queue.put_nowait(task)
        except queue.Full:
            return False
        return True

    def stop(self, drain_timeout: float) -> int:
        """Let queued tasks finish for up to ``drain_timeout`` seconds, then drop the rest.

        Returns how many queued tasks were dropped. The bus adapter has not acknowledged those
        messages, so the broker delivers them again when the analytic comes back.
        """
        deadline = time.monotonic() + drain_timeout
        with self._queue.all_tasks_done:
            while self._queue.unfinished_tasks and (left := deadline - time.monotonic()) > 0:
                self._queue.all_tasks_done.wait(left)
        dropped = 0
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
            self._queue.task_done()
            dropped += 1
        for _ in self._threads:
            try:
                self._queue.put(_STOP, timeout=1.0)
            except queue.Full:  # only if someone kept submitting; the threads are daemons
                break
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout=max(0.0, deadline - time.monotonic()) + 1.0)
        return dropped

    def _run(self) -> None:
        while True:
            task = self._queue.get()
            try:
                if task is _STOP:
                    return
                task()
            except Exception:  # one bad request must not take a worker down
                log.exception("bus task failed", extra={"event": "bus_task_failed"})
            finally:
                self._queue.task_done()
