"""A stand-in for the SIFIS-Home DHT's websocket, started by the tests on a free port.

A real websocket server (the ``websockets`` library, not the client library the analytic
uses) that keeps every text message it receives, in arrival order, and answers each the way
the DHT tells its clients about a stored value (a ``Persistent`` message), so the analytic's
link must read and drop what the DHT sends. ``stop`` closes it, live connections included;
``start`` again serves on the same port, as a restarted DHT would.
"""

from __future__ import annotations

import json
import threading

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import Server, ServerConnection, serve


class DhtServer:
    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"ws://127.0.0.1:{port}/ws"
        self.received: list[dict] = []
        self.paths: list[str] = []
        self._changed = threading.Condition()
        self._server: Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._server = serve(self._handle, "127.0.0.1", self.port)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            for connection in list(self._server.connections):
                connection.close(1001, "DHT going away")
        if self._thread is not None:
            self._thread.join(10)
        self._server = self._thread = None

    def wait_for(self, count: int, timeout: float = 60.0) -> list[dict]:
        """The first ``count`` messages, once that many have arrived."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.received) >= count, timeout):
                raise AssertionError(f"the DHT got {len(self.received)} messages, not {count}")
            return list(self.received[:count])

    def _handle(self, connection: ServerConnection) -> None:
        self.paths.append(connection.request.path if connection.request else "")
        try:
            for message in connection:
                # The DHT parses text frames; a binary one is kept as a marker a test will see.
                stored = json.loads(message) if isinstance(message, str) else {"binary": True}
                with self._changed:
                    self.received.append(stored)
                    self._changed.notify_all()
                post = stored.get("RequestPostTopicUUID", {})
                connection.send(json.dumps({"Persistent": {
                    "topic_name": post.get("topic_name"), "topic_uuid": post.get("topic_uuid"),
                    "value": post.get("value"), "deleted": False}}))
        except ConnectionClosed:
            pass
