"""Audio streams over the bus: ``<prefix>/stream/<session>/chunk`` and ``.../end``.

The household's ``StreamRegistry`` (``analytic/streams.py``) holds the audio; it names sessions
with random UUIDs of its own and has no way to open one under a name the caller chose. A device
on the bus cannot learn a generated id without a request/response round trip first, so the
adapter maps the *bus* session name (the topic level the device picked) to a registry session,
opened implicitly by the first chunk. Nothing is secret about a bus session name: whoever may
subscribe to the chunk topic hears the audio anyway, so access is the broker's ACL's business.
Sessions are kept per device (``session_key``): device A naming B's session opens a session of
its own, it never appends to, uses or ends B's.

A chunk's format comes from its MQTT 5 content type, the same types ``POST /streams/<id>``
takes: ``audio/pcm;rate=16000`` is raw signed 16-bit little-endian mono PCM at that rate;
``audio/wav``, ``audio/flac``, ``audio/ogg`` are small whole files. Without a content type
(MQTT 3.1.1 clients) a chunk starting with a WAV/FLAC/OGG signature is a file, anything else
raw PCM at the rate the session already has (so a first PCM chunk needs the content type).
"""

from __future__ import annotations

import contextlib
import threading

from analytic.errors import BadRequest, NotFound, TooLarge
from analytic.household import Recording
from analytic.streams import FILE, PCM, SessionInfo, StreamRegistry, chunk_kind

FILE_SIGNATURES = (b"RIFF", b"RF64", b"fLaC", b"OggS")


def session_key(device: str | None, session: str) -> str:
    """One device's bus session; neither part holds a '/', so keys never collide."""
    return f"{device or ''}/{session}"


def chunk_format(content_type: str | None, payload: bytes) -> tuple[str, int | None]:
    """``(PCM or FILE, sample rate or None)`` of one chunk (see the module docstring)."""
    if not content_type or not content_type.strip():
        return (FILE, None) if payload[:4] in FILE_SIGNATURES else (PCM, None)
    mimetype, _, parameters = content_type.partition(";")
    if chunk_kind(mimetype.strip().lower()) == FILE:
        return FILE, None
    rate = None
    for parameter in parameters.split(";"):
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "rate":
            try:
                rate = int(value.strip())
            except ValueError:
                raise BadRequest("rate: expected an integer number of Hz",
                                 code="bad_field") from None
    return PCM, rate


class BusStreams:
    """Bus session names mapped onto the household's stream sessions; thread-safe.

    The map never outgrows the registry by much: sessions the registry has forgotten (idle or
    ended) are pruned whenever a new one is opened, and the registry caps open sessions.
    """

    def __init__(self, registry: StreamRegistry, max_chunk_bytes: int) -> None:
        self.registry = registry
        self.max_chunk_bytes = max_chunk_bytes
        self._ids: dict[str, str] = {}  # bus session name -> registry session id
        self._lock = threading.Lock()

    def append(self, session: str, payload: bytes, content_type: str | None) -> SessionInfo:
        """Add one chunk, opening the session with the first one (or after it expired)."""
        if len(payload) > self.max_chunk_bytes:
            raise TooLarge(f"chunk larger than {self.max_chunk_bytes} bytes")
        kind, rate = chunk_format(content_type, payload)
        with self._lock:
            session_id = self._ids.get(session) or self._open(session)
        try:
            return self.registry.append(session_id, payload, kind, rate)
        except NotFound:  # idle past the timeout: the registry forgot it, this chunk restarts it
            with self._lock:
                session_id = self._open(session)
            return self.registry.append(session_id, payload, kind, rate)

    def recording(self, session: str) -> Recording:
        """The session's audio as ``(name, WAV bytes)``, ``session`` being a ``session_key``.
        A name the bus never saw is tried as a registry id, so a session opened over HTTP
        (``POST /streams``, an unguessable UUID) works here too."""
        name = session.partition("/")[2]
        with self._lock:
            session_id = self._ids.get(session, name)
        _, data = self.registry.recording(session_id)
        return f"stream:{name}", data

    def end(self, session: str) -> None:
        """Forget the session and its audio (after ``end``, whatever its answer was)."""
        with self._lock:
            session_id = self._ids.pop(session, session.partition("/")[2])
        with contextlib.suppress(NotFound):  # already expired
            self.registry.close(session_id)

    def __len__(self) -> int:
        with self._lock:
            return len(self._ids)

    def _open(self, session: str) -> str:
        """Called under ``_lock``."""
        for name, session_id in list(self._ids.items()):
            try:
                self.registry.info(session_id)
            except NotFound:
                del self._ids[name]
        session_id = self.registry.open().session_id  # Busy when the registry is full
        self._ids[session] = session_id
        return session_id
