"""Audio streams from devices that send speech as it is captured, held in memory only.

A device opens a session, appends chunks (raw 16-bit little-endian PCM at a declared sample
rate, or small WAV/FLAC/OGG files), and then names the session wherever a file is accepted
(verify, identify, enrol, analyze). The session becomes one WAV (32-bit float, the session's
rate) handed to the usual intake, so a stream sent in chunks is decoded, trimmed and embedded
exactly like the whole file.

Bounded on every side, because sessions hold audio in RAM: a session is forgotten after
``idle_timeout_s`` without a chunk (then its id is 404), it may not grow beyond ``max_s``
seconds, and at most ``max_sessions`` are open at once. Ids are random UUIDs: a session id is
as good as the audio it holds, so it is never guessable. Nothing is written to disk.
"""

from __future__ import annotations

import io
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import soundfile as sf

from analytic.audio import MAX_SOURCE_RATE, MIN_SOURCE_RATE, read_bounded
from analytic.errors import BadRequest, Busy, NotFound, TooLong, UnsupportedAudio

PCM = "pcm"  # raw signed 16-bit little-endian mono
FILE = "file"  # a whole small audio file (WAV, FLAC, OGG, ...)
# A chunk's content type, for every door (HTTP's Content-Type, the bus's MQTT 5 content
# type): whole small files, decoded with libsndfile; or raw PCM (signed 16-bit little-endian
# mono) at a declared rate. multipart/form-data is a whole file in a form (HTTP reads its
# ``file`` field first; on the bus the payload itself is the file).
FILE_TYPES = frozenset({"audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave",
                        "audio/flac", "audio/x-flac", "audio/ogg", "multipart/form-data"})
PCM_TYPES = frozenset({"audio/pcm", "application/octet-stream", ""})


def chunk_kind(mimetype: str) -> str:
    """``FILE`` or ``PCM`` for a chunk's content type (lower case, parameters removed);
    ``UnsupportedAudio`` for any other type."""
    if mimetype in FILE_TYPES:
        return FILE
    if mimetype in PCM_TYPES:
        return PCM
    raise UnsupportedAudio(f"chunk type {mimetype!r}: send audio/pcm;rate=N (16-bit "
                           "little-endian), audio/wav or audio/flac")


@dataclass
class Session:
    session_id: str
    sample_rate: int | None
    created: float
    touched: float
    chunks: list[np.ndarray] = field(default_factory=list)
    frames: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate else 0.0


@dataclass(frozen=True)
class SessionInfo:
    session_id: str
    sample_rate: int | None
    duration_s: float
    chunks: int
    expires_in_s: float


class StreamRegistry:
    """Thread-safe sessions; ``clock`` is injectable so expiry can be tested without sleeping."""

    def __init__(
        self,
        idle_timeout_s: float = 30.0,
        max_s: float = 60.0,
        max_sessions: int = 16,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.idle_timeout_s = idle_timeout_s
        self.max_s = max_s
        self.max_sessions = max_sessions
        self.clock = clock
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def open(self, sample_rate: int | None = None) -> SessionInfo:
        """A new session; ``sample_rate`` is the default for raw PCM chunks sent to it."""
        if sample_rate is not None:
            check_rate(sample_rate)
        now = self.clock()
        with self._lock:
            self._expire(now)
            if len(self._sessions) >= self.max_sessions:
                raise Busy(f"{self.max_sessions} stream sessions are open; try again later")
            session = Session(str(uuid.uuid4()), sample_rate, now, now)
            self._sessions[session.session_id] = session
        return self._info(session, now)

    def append(
        self, session_id: str, data: bytes, kind: str = PCM, sample_rate: int | None = None
    ) -> SessionInfo:
        """Add a chunk; the first chunk fixes the session's rate, later ones must match it."""
        session = self._get(session_id)
        # What the session may still take, checked before decoding: a chunk can neither
        # allocate nor decode more than that (issue 14: a FLAC chunk is a decompression bomb).
        left_s = self.max_s - session.duration_s
        too_long = TooLong(f"stream {session_id} would exceed {self.max_s:.0f} s")
        try:
            if kind == PCM:
                samples, rate = pcm_samples(data, sample_rate or session.sample_rate, left_s)
            else:
                samples, rate = file_samples(data, left_s)
        except TooLong:
            raise too_long from None
        with session.lock:
            if session.sample_rate is None:
                session.sample_rate = rate
            if rate != session.sample_rate:
                raise BadRequest(
                    f"chunk at {rate} Hz in a {session.sample_rate} Hz stream",
                    code="bad_field",
                )
            if (session.frames + len(samples)) / rate > self.max_s:
                raise too_long
            session.chunks.append(samples)
            session.frames += len(samples)
            session.touched = self.clock()
        return self._info(session, session.touched)

    def info(self, session_id: str) -> SessionInfo:
        return self._info(self._get(session_id), self.clock())

    def recording(self, session_id: str) -> tuple[str, bytes]:
        """The session so far as ``(name, WAV bytes)``, for the usual decode path.

        Using a session does not end it (a device may verify, then identify); it ends when
        closed or idle.
        """
        session = self._get(session_id)
        with session.lock:
            if not session.frames or session.sample_rate is None:
                samples, rate = np.zeros(0, np.float32), session.sample_rate or 16_000
            else:
                samples, rate = np.concatenate(session.chunks), session.sample_rate
            session.touched = self.clock()
        buffer = io.BytesIO()
        sf.write(buffer, samples, rate, format="WAV", subtype="FLOAT")
        return f"stream:{session_id}", buffer.getvalue()

    def close(self, session_id: str) -> None:
        with self._lock:
            if self._sessions.pop(session_id, None) is None:
                raise NotFound(f"no stream session {session_id!r} (unknown or expired)")

    def __len__(self) -> int:
        with self._lock:
            self._expire(self.clock())
            return len(self._sessions)

    def _get(self, session_id: str) -> Session:
        now = self.clock()
        with self._lock:
            self._expire(now)
            session = self._sessions.get(session_id)
        if session is None:
            raise NotFound(f"no stream session {session_id!r} (unknown or expired)")
        return session

    def _expire(self, now: float) -> None:
        """Forget idle sessions (called under ``_lock`` on every access: no timer thread)."""
        for key in [k for k, s in self._sessions.items()
                    if now - s.touched >= self.idle_timeout_s]:
            del self._sessions[key]

    def _info(self, session: Session, now: float) -> SessionInfo:
        return SessionInfo(
            session_id=session.session_id,
            sample_rate=session.sample_rate,
            duration_s=round(session.duration_s, 3),
            chunks=len(session.chunks),
            expires_in_s=round(max(0.0, self.idle_timeout_s - (now - session.touched)), 3),
        )


def check_rate(rate: int) -> int:
    if not MIN_SOURCE_RATE <= rate <= MAX_SOURCE_RATE:
        raise BadRequest(f"sample rate {rate} Hz is not supported", code="bad_field")
    return rate


def pcm_samples(
    data: bytes, rate: int | None, max_s: float = float("inf")
) -> tuple[np.ndarray, int]:
    """Raw signed 16-bit little-endian mono PCM to float32 (as libsndfile scales it); its
    length is checked against ``max_s`` before any conversion."""
    if rate is None:
        raise BadRequest("a raw PCM chunk needs a sample rate (rate=...)", code="bad_field")
    check_rate(rate)
    if len(data) % 2:
        raise UnsupportedAudio("a 16-bit PCM chunk has an even number of bytes")
    if len(data) // 2 / rate > max_s:
        raise TooLong(f"the chunk is longer than {max_s:.1f} s")
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0, rate


def file_samples(data: bytes, max_s: float = float("inf")) -> tuple[np.ndarray, int]:
    """A whole small audio file (WAV, FLAC, ...) to mono float32 at its own rate, decoding at
    most ``max_s`` seconds of it (``audio.read_bounded``)."""
    if not data:
        raise UnsupportedAudio("the chunk is empty")
    try:
        samples, rate = read_bounded(data, "the chunk", max_s)
    except UnsupportedAudio as exc:
        if "sample rate" in exc.message:  # as a PCM chunk's rate is refused
            raise BadRequest(exc.message, code="bad_field") from None
        raise
    return samples, int(rate)
