"""Voiceprints at rest: serialised to bytes, Fernet-encrypted when a key is configured.

A voiceprint is biometric data: whoever copies the database file should get ids and dates, not
vectors. Fernet (AES-128-CBC plus HMAC-SHA256, from ``cryptography``) authenticates as well as
encrypts, so a wrong key is detected rather than producing garbage vectors.

Make a key with:

    python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from cryptography.fernet import Fernet, InvalidToken

# Encrypted once with the store's key and kept in the store's meta table: a wrong key fails to
# decrypt it at start-up, before any voiceprint is touched.
KEY_CHECK_PLAINTEXT = b"voicegate voiceprint store"


class VoiceprintKeyError(Exception):
    """The key is missing, malformed, or not the one the store was encrypted with."""


def load_key(key: str | None, key_file: str | None) -> Fernet | None:
    """A Fernet from the key itself or from a file holding it; None when neither is set."""
    if key and key_file:
        raise VoiceprintKeyError("set either the voiceprint key or the key file, not both")
    if key_file:
        try:
            key = Path(key_file).read_text().strip()
        except OSError as exc:
            raise VoiceprintKeyError(
                f"cannot read the voiceprint key file {key_file}: {exc}"
            ) from None
    if not key:
        return None
    try:
        return Fernet(key.strip().encode())
    except (ValueError, TypeError):
        raise VoiceprintKeyError(
            "the voiceprint key is not a Fernet key (32 url-safe base64-encoded bytes)"
        ) from None


def pack(samples: np.ndarray, centroid: np.ndarray) -> bytes:
    """Vectors to bytes (``np.savez`` without pickling: plain arrays only)."""
    buffer = io.BytesIO()
    np.savez(buffer, samples=np.asarray(samples, np.float32), centroid=np.asarray(centroid,
                                                                                  np.float32))
    return buffer.getvalue()


def unpack(blob: bytes) -> tuple[np.ndarray, np.ndarray]:
    with np.load(io.BytesIO(blob), allow_pickle=False) as arrays:
        return arrays["samples"].astype(np.float32), arrays["centroid"].astype(np.float32)


class Sealer:
    """Encrypts and decrypts voiceprint blobs; a no-op without a key."""

    def __init__(self, fernet: Fernet | None) -> None:
        self.fernet = fernet

    @property
    def encrypted(self) -> bool:
        return self.fernet is not None

    def seal(self, blob: bytes) -> bytes:
        return self.fernet.encrypt(blob) if self.fernet else blob

    def open(self, blob: bytes) -> bytes:
        if self.fernet is None:
            return blob
        try:
            return self.fernet.decrypt(blob)
        except InvalidToken:
            raise VoiceprintKeyError(
                "a voiceprint does not decrypt with the configured key"
            ) from None

    def key_check(self) -> str:
        assert self.fernet is not None
        return self.fernet.encrypt(KEY_CHECK_PLAINTEXT).decode()

    def verify_key_check(self, token: str) -> None:
        if self.fernet is None:
            raise VoiceprintKeyError(
                "the voiceprint store is encrypted and no key is configured: set "
                "VOICEGATE_VOICEPRINT_KEY or VOICEGATE_VOICEPRINT_KEY_FILE"
            )
        try:
            ok = self.fernet.decrypt(token.encode()) == KEY_CHECK_PLAINTEXT
        except InvalidToken:
            ok = False
        if not ok:
            raise VoiceprintKeyError("the voiceprint store was encrypted with a different key")
