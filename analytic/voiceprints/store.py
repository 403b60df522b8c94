"""Where voiceprints live: one interface, SQLite (the default) and PostgreSQL behind it.

SQLite needs nothing but a writable data directory; PostgreSQL lets several instances serve
one household from one store. Both keep the same three tables (names start with a prefix so one
database can hold several stores):

    <prefix>voiceprint_meta  key, value        format version, "encryption", the key check
    <prefix>voiceprints      external_id, encoder, sample_count, vectors, created_at, updated_at
    <prefix>digit_templates  external_id, templates, updated_at   (liveness, issue 16)
    <prefix>voiceprint_version  id, version   one row, bumped with every change of voiceprints

``vectors`` holds the per-sample embeddings and their centroid, Fernet-encrypted when the store
has a key (``crypto.py``); ids, encoder names, counts and dates stay readable so listing needs no
decryption. Audio is never stored. Whether a store is encrypted is decided when it is first
opened and recorded in the meta table: opening an encrypted store without its key, or with
another key, fails rather than starting empty.

The version row is raised in the same transaction as every enrolment and deletion, by whichever
instance makes it, so an instance that keeps the voiceprints in memory (``cache.py``) learns of
any change with one cheap read per request.
"""

from __future__ import annotations

import builtins
import hashlib
import re
import sqlite3
import threading
import zlib
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from analytic.errors import Conflict
from analytic.voiceprints.crypto import Sealer, VoiceprintKeyError, pack, unpack
from analytic.voiceprints.model import Voiceprint, centroid, utcnow

FORMAT_VERSION = "1"
SQLITE_FILE = "voiceprints.sqlite"
PREFIX_PATTERN = re.compile(r"^([a-z_][a-z0-9_]{0,40})?$")


class StoreError(Exception):
    """The store cannot be opened as configured (locked, wrong key, bad URL, mixed state)."""


@dataclass(frozen=True)
class Snapshot:
    """The voiceprints of one encoder as of ``version``, and which other encoders the store
    holds voiceprints of (identify refuses to leave those out silently). ``digests[i]`` names
    the stored row of ``voiceprints[i]``: it changes whenever that row is written."""

    version: int
    voiceprints: list[Voiceprint]
    other_encoders: frozenset[str]
    digests: tuple[bytes, ...] = ()


def row_digest(blob: bytes) -> bytes:
    """A stored row's name for "unchanged since": a hash of its sealed vectors (a Fernet token
    is new, with a fresh IV, at every write)."""
    return hashlib.blake2b(bytes(blob), digest_size=16).digest()


@dataclass(frozen=True)
class VoiceprintInfo:
    """What can be said about a voiceprint without decrypting it."""

    external_id: str
    encoder: str
    sample_count: int
    created_at: datetime
    updated_at: datetime


class VoiceprintStore(ABC):
    """Thread-safe persistence of voiceprints; every method is one transaction."""

    encrypted: bool
    location: str  # for logs: a path or a URL without its password

    @abstractmethod
    def add_samples(
        self, external_id: str, encoder: str, samples: np.ndarray, replace: bool = False,
        max_samples: int | None = None,
    ) -> Voiceprint:
        """Append samples to a person (creating them), or start over with ``replace``.

        With ``max_samples``, only the newest that many are kept: a voice drifts over years,
        and an unbounded row would grow with every re-enrolment.

        Raises ``Conflict`` when the person was enrolled with another encoder and ``replace``
        is false: embeddings of two encoders cannot be averaged or compared.
        """

    @abstractmethod
    def get(self, external_id: str) -> Voiceprint | None: ...

    @abstractmethod
    def info(self, external_id: str) -> VoiceprintInfo | None: ...

    @abstractmethod
    def list(self) -> list[VoiceprintInfo]: ...

    @abstractmethod
    def all(self, encoder: str) -> builtins.list[Voiceprint]:
        """Every voiceprint made by ``encoder`` (the only ones a new embedding can be scored
        against)."""

    @abstractmethod
    def version(self) -> int:
        """A number that changes with every enrolment or deletion, by any instance."""

    @abstractmethod
    def snapshot(self, encoder: str, held: Mapping[bytes, Voiceprint] | None = None) -> Snapshot:
        """``all(encoder)`` with the version it is at least as new as; rows whose digest is in
        ``held`` are taken from there instead of being decrypted again."""

    @abstractmethod
    def set_digit_templates(self, external_id: str, blob: bytes) -> None:
        """Store a member's spoken-digit templates (liveness, ``analytic/digits.py``)."""

    @abstractmethod
    def digit_templates(self, external_id: str) -> bytes | None: ...

    @abstractmethod
    def delete(self, external_id: str) -> bool:
        """Forget a member: voiceprint and digit templates."""

    @abstractmethod
    def delete_all(self) -> int: ...

    @abstractmethod
    def close(self) -> None: ...


class SqlVoiceprintStore(VoiceprintStore):
    """The shared SQL; subclasses supply the connection, the dialect and locking."""

    param = "?"
    blob_type = "BLOB"
    time_type = "TEXT"

    def __init__(self, sealer: Sealer, table_prefix: str) -> None:
        if not PREFIX_PATTERN.match(table_prefix):
            raise StoreError(f"table prefix {table_prefix!r} must match {PREFIX_PATTERN.pattern}")
        self.sealer = sealer
        self.prefix = table_prefix
        self.meta_table = f"{table_prefix}voiceprint_meta"
        self.table = f"{table_prefix}voiceprints"
        self.digits_table = f"{table_prefix}digit_templates"
        self.version_table = f"{table_prefix}voiceprint_version"
        self.encrypted = sealer.encrypted

    # --- dialect hooks ---
    @abstractmethod
    def _transaction(self, lock_name: str | None = None) -> Any:
        """Context manager yielding a cursor inside one write-locked transaction."""

    def _sql(self, statement: str) -> str:
        return statement.replace("?", self.param)

    def _time_out(self, value: Any) -> Any:
        return value

    def _time_in(self, value: Any) -> datetime:
        return value

    # --- schema and the encryption marker ---
    def _initialise(self) -> None:
        with self._transaction("init") as cur:
            cur.execute(f"CREATE TABLE IF NOT EXISTS {self.meta_table} "
                        "(key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            cur.execute(
                f"CREATE TABLE IF NOT EXISTS {self.table} (external_id TEXT PRIMARY KEY, "
                f"encoder TEXT NOT NULL, sample_count INTEGER NOT NULL, "
                f"vectors {self.blob_type} NOT NULL, created_at {self.time_type} NOT NULL, "
                f"updated_at {self.time_type} NOT NULL)"
            )
            # Liveness (issue 16): MFCC templates of each member's spoken digits, sealed like
            # the vectors (they are derived from the member's voice).
            cur.execute(
                f"CREATE TABLE IF NOT EXISTS {self.digits_table} (external_id TEXT PRIMARY KEY, "
                f"templates {self.blob_type} NOT NULL, updated_at {self.time_type} NOT NULL)"
            )
            cur.execute(f"CREATE TABLE IF NOT EXISTS {self.version_table} "
                        "(id INTEGER PRIMARY KEY, version BIGINT NOT NULL)")
            cur.execute(f"INSERT INTO {self.version_table} (id, version) SELECT 1, 0 "
                        f"WHERE NOT EXISTS (SELECT 1 FROM {self.version_table})")
            cur.execute(self._sql(f"SELECT key, value FROM {self.meta_table}"))
            meta = dict(cur.fetchall())
            cur.execute(f"SELECT COUNT(*) FROM {self.table}")
            (rows,) = cur.fetchone()
            self._check_marker(cur, meta, rows)

    def _check_marker(self, cur: Any, meta: dict[str, str], rows: int) -> None:
        mode = meta.get("encryption")
        if mode is None and rows:
            raise StoreError(f"{self.location}: voiceprints without an encryption marker")
        if mode == "fernet":
            try:
                self.sealer.verify_key_check(meta.get("key_check", ""))
            except VoiceprintKeyError as exc:
                raise StoreError(f"{self.location}: {exc}") from None
            return
        if mode == "none" and self.sealer.encrypted and not rows:
            # The documented migration (empty the clear store, then add a key): deleted rows
            # can outlive DELETE in the table's files, so the table starts afresh first.
            self._purge(cur)
        if mode == "none" and self.sealer.encrypted and rows:
            raise StoreError(
                f"{self.location}: the store holds {rows} unencrypted voiceprint(s) but a key "
                "is configured; delete them (DELETE /enrollments) without the key first, or "
                "unset the key"
            )
        wanted = {"format": FORMAT_VERSION,
                  "encryption": "fernet" if self.sealer.encrypted else "none"}
        if self.sealer.encrypted:
            wanted["key_check"] = self.sealer.key_check()
        cur.execute(self._sql(f"DELETE FROM {self.meta_table}"))
        for key, value in wanted.items():
            cur.execute(self._sql(f"INSERT INTO {self.meta_table} (key, value) VALUES (?, ?)"),
                        (key, value))

    def _purge(self, cur: Any) -> None:
        """Leave no trace of deleted rows in the table's files (the clear-to-encrypted
        migration). SQLite's secure delete already zeroed them; PostgreSQL overrides this."""

    # --- rows ---
    def _voiceprint(self, row: tuple) -> Voiceprint:
        external_id, encoder, _, blob, created, updated = row
        try:
            samples, centre = unpack(self.sealer.open(bytes(blob)))
        except VoiceprintKeyError as exc:
            raise StoreError(f"{self.location}: {exc}") from None
        return Voiceprint(external_id, encoder, samples, self._time_in(created),
                          self._time_in(updated), centre)

    def _info(self, row: tuple) -> VoiceprintInfo:
        external_id, encoder, count, created, updated = row
        return VoiceprintInfo(external_id, encoder, int(count), self._time_in(created),
                              self._time_in(updated))

    def _bump(self, cur: Any) -> None:
        """Mark a change of the voiceprints, inside the transaction that makes it (the row lock
        also orders concurrent writers, so no two changes share a version)."""
        cur.execute(f"UPDATE {self.version_table} SET version = version + 1 WHERE id = 1")

    _COLUMNS = "external_id, encoder, sample_count, vectors, created_at, updated_at"
    _INFO_COLUMNS = "external_id, encoder, sample_count, created_at, updated_at"

    def add_samples(
        self, external_id: str, encoder: str, samples: np.ndarray, replace: bool = False,
        max_samples: int | None = None,
    ) -> Voiceprint:
        samples = np.atleast_2d(np.asarray(samples, dtype=np.float32))
        with self._transaction(external_id) as cur:
            cur.execute(self._sql(f"SELECT {self._COLUMNS} FROM {self.table} "
                                  "WHERE external_id = ?"), (external_id,))
            row = cur.fetchone()
            now = utcnow()
            if row is None or replace:
                created = now if row is None else self._time_in(row[4])
                print_ = Voiceprint(external_id, encoder, samples, created, now)
            else:
                old = self._voiceprint(row)
                if old.encoder != encoder:
                    raise Conflict(
                        f"{external_id!r} was enrolled with encoder {old.encoder!r}, this "
                        f"service runs {encoder!r}: enrol again with replace=true"
                    )
                print_ = Voiceprint(external_id, encoder, np.vstack([old.samples, samples]),
                                    old.created_at, now)
            if max_samples is not None and print_.sample_count > max_samples:
                print_.samples = print_.samples[-max_samples:]
            print_.centroid = centroid(print_.samples)
            blob = self.sealer.seal(pack(print_.samples, print_.centroid))
            cur.execute(self._sql(f"DELETE FROM {self.table} WHERE external_id = ?"),
                        (external_id,))
            cur.execute(
                self._sql(f"INSERT INTO {self.table} ({self._COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"),
                (external_id, encoder, print_.sample_count, blob,
                 self._time_out(print_.created_at), self._time_out(print_.updated_at)),
            )
            self._bump(cur)
        return print_

    def get(self, external_id: str) -> Voiceprint | None:
        with self._transaction() as cur:
            cur.execute(self._sql(f"SELECT {self._COLUMNS} FROM {self.table} "
                                  "WHERE external_id = ?"), (external_id,))
            row = cur.fetchone()
        return None if row is None else self._voiceprint(row)

    def info(self, external_id: str) -> VoiceprintInfo | None:
        with self._transaction() as cur:
            cur.execute(self._sql(f"SELECT {self._INFO_COLUMNS} FROM {self.table} "
                                  "WHERE external_id = ?"), (external_id,))
            row = cur.fetchone()
        return None if row is None else self._info(row)

    def list(self) -> list[VoiceprintInfo]:
        with self._transaction() as cur:
            cur.execute(f"SELECT {self._INFO_COLUMNS} FROM {self.table} ORDER BY external_id")
            rows = cur.fetchall()
        return [self._info(row) for row in rows]

    def all(self, encoder: str) -> builtins.list[Voiceprint]:
        return self.snapshot(encoder).voiceprints

    def version(self) -> int:
        with self._transaction() as cur:
            cur.execute(f"SELECT version FROM {self.version_table} WHERE id = 1")
            (version,) = cur.fetchone()
        return int(version)

    def snapshot(self, encoder: str, held: Mapping[bytes, Voiceprint] | None = None) -> Snapshot:
        with self._transaction() as cur:
            # The version first: under PostgreSQL's READ COMMITTED each statement sees the
            # latest commits, so rows read after it are at least as new as it says (a change
            # in between costs one more reload, never a stale cache).
            cur.execute(f"SELECT version FROM {self.version_table} WHERE id = 1")
            (version,) = cur.fetchone()
            cur.execute(self._sql(f"SELECT {self._COLUMNS} FROM {self.table} WHERE encoder = ? "
                                  "ORDER BY external_id"), (encoder,))
            rows = cur.fetchall()
            cur.execute(self._sql(f"SELECT DISTINCT encoder FROM {self.table} "
                                  "WHERE encoder <> ?"), (encoder,))
            others = frozenset(name for (name,) in cur.fetchall())
        digests = tuple(row_digest(row[3]) for row in rows)
        held = held or {}
        prints = [held[d] if d in held else self._voiceprint(row)
                  for d, row in zip(digests, rows, strict=True)]
        return Snapshot(int(version), prints, others, digests)

    def set_digit_templates(self, external_id: str, blob: bytes) -> None:
        with self._transaction(external_id) as cur:
            cur.execute(self._sql(f"DELETE FROM {self.digits_table} WHERE external_id = ?"),
                        (external_id,))
            cur.execute(self._sql(f"INSERT INTO {self.digits_table} (external_id, templates, "
                                  "updated_at) VALUES (?, ?, ?)"),
                        (external_id, self.sealer.seal(blob), self._time_out(utcnow())))

    def digit_templates(self, external_id: str) -> bytes | None:
        with self._transaction() as cur:
            cur.execute(self._sql(f"SELECT templates FROM {self.digits_table} "
                                  "WHERE external_id = ?"), (external_id,))
            row = cur.fetchone()
        if row is None:
            return None
        try:
            return self.sealer.open(bytes(row[0]))
        except VoiceprintKeyError as exc:
            raise StoreError(f"{self.location}: {exc}") from None

    def delete(self, external_id: str) -> bool:
        with self._transaction(external_id) as cur:
            cur.execute(self._sql(f"DELETE FROM {self.digits_table} WHERE external_id = ?"),
                        (external_id,))
            cur.execute(self._sql(f"DELETE FROM {self.table} WHERE external_id = ?"),
                        (external_id,))
            deleted = cur.rowcount > 0
            if deleted:
                self._bump(cur)
            return deleted

    def delete_all(self) -> int:
        with self._transaction("all") as cur:
            cur.execute(f"DELETE FROM {self.digits_table}")
            cur.execute(f"DELETE FROM {self.table}")
            deleted = int(cur.rowcount)
            self._bump(cur)
            return deleted

    def drop(self) -> None:
        """Remove both tables (tests, and a clean uninstall)."""
        with self._transaction("init") as cur:
            cur.execute(f"DROP TABLE IF EXISTS {self.digits_table}")
            cur.execute(f"DROP TABLE IF EXISTS {self.table}")
            cur.execute(f"DROP TABLE IF EXISTS {self.meta_table}")
            cur.execute(f"DROP TABLE IF EXISTS {self.version_table}")


class SqliteVoiceprintStore(SqlVoiceprintStore):
    """One file in the data directory; one connection shared behind a lock.

    Writes take SQLite's write lock first (``BEGIN IMMEDIATE``), so two processes on one file
    cannot both read-modify-write the same person.
    """

    def __init__(self, path: Path, sealer: Sealer, table_prefix: str = "") -> None:
        super().__init__(sealer, table_prefix)
        self.path = Path(path)
        self.location = str(self.path)
        try:
            # Voiceprints are biometric data: a new directory and file are the owner's alone.
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            self.path.touch(mode=0o600, exist_ok=True)
            self._conn = sqlite3.connect(self.path, timeout=10.0, isolation_level=None,
                                         check_same_thread=False)
            # Deleted voiceprints are overwritten with zeros, not left in free pages; set
            # here, not left to whether the distribution built SQLite with it on.
            self._conn.execute("PRAGMA secure_delete = ON")
            if self._conn.execute("PRAGMA secure_delete").fetchone() != (1,):
                raise sqlite3.Error("this SQLite cannot delete securely")
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the voiceprint store {self.path}: {exc}") from None
        self._lock = threading.Lock()
        try:
            self._initialise()
        except sqlite3.Error as exc:  # not a database, locked for too long, read-only, ...
            self._conn.close()
            raise StoreError(f"cannot use the voiceprint store {self.path}: {exc}") from None
        except BaseException:
            self._conn.close()
            raise

    @contextmanager
    def _transaction(self, lock_name: str | None = None) -> Iterator[sqlite3.Cursor]:
        with self._lock:
            cur = self._conn.cursor()
            cur.execute("BEGIN IMMEDIATE" if lock_name else "BEGIN")
            try:
                yield cur
            except BaseException:
                self._conn.rollback()
                raise
            else:
                self._conn.commit()
            finally:
                cur.close()

    def _time_out(self, value: datetime) -> str:
        return value.isoformat()

    def _time_in(self, value: str) -> datetime:
        return datetime.fromisoformat(value)

    def close(self) -> None:
        with self._lock:
            self._conn.close()


class PostgresVoiceprintStore(SqlVoiceprintStore):
    """For several instances serving one household: one database, the same tables.

    Writes to one person are serialised across instances with a transaction-scoped advisory
    lock on the id, so two instances enrolling the same person both keep their samples.
    """

    param = "%s"
    blob_type = "BYTEA"
    time_type = "TIMESTAMPTZ"

    def __init__(self, url: str, sealer: Sealer, table_prefix: str = "") -> None:
        super().__init__(sealer, table_prefix)
        self.url = url
        self.location = redact(url)
        self._lock = threading.Lock()
        self._conn = self._connect()
        try:
            self._initialise()
        except BaseException:
            self._conn.close()
            raise

    def _connect(self) -> Any:
        import psycopg

        try:
            return psycopg.connect(self.url, autocommit=True, connect_timeout=10)
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to {self.location}: {exc}") from None

    @contextmanager
    def _transaction(self, lock_name: str | None = None) -> Iterator[Any]:
        with self._lock:
            if self._conn.closed or self._conn.broken:
                self._conn = self._connect()  # the server restarted; one fresh connection
            with self._conn.transaction(), self._conn.cursor() as cur:
                if lock_name is not None:
                    key = zlib.crc32(f"{self.table}:{lock_name}".encode())
                    cur.execute("SELECT pg_advisory_xact_lock(%s)", (key,))
                yield cur

    def _purge(self, cur: Any) -> None:
        """A DELETEd row stays in the heap file until vacuumed (and plain VACUUM does not
        overwrite it); TRUNCATE gives the table a new, empty file and removes the old one."""
        cur.execute(f"TRUNCATE {self.table}")

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def redact(url: str) -> str:
    """The URL without its password, for logs and error messages."""
    return re.sub(r"//([^:/@]+):[^@/]*@", r"//\1:***@", url)


def open_store(
    database_url: str | None, data_dir: str | Path, sealer: Sealer, table_prefix: str = ""
) -> VoiceprintStore:
    """The configured store: PostgreSQL for ``postgresql://``, else SQLite in ``data_dir``."""
    if database_url and database_url.startswith(("postgresql://", "postgres://")):
        return PostgresVoiceprintStore(database_url, sealer, table_prefix)
    if database_url and database_url.startswith("sqlite:///"):
        return SqliteVoiceprintStore(Path(database_url.removeprefix("sqlite:///")), sealer,
                                     table_prefix)
    if database_url:
        raise StoreError(
            f"unsupported database URL {redact(database_url)!r}: use postgresql://... or "
            "sqlite:///path, or leave it unset for SQLite in the data directory"
        )
    return SqliteVoiceprintStore(Path(data_dir).expanduser() / SQLITE_FILE, sealer, table_prefix)
