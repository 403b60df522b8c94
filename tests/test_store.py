"""The voiceprint store, the same tests on SQLite and on the real PostgreSQL server."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from analytic.errors import Conflict
from analytic.voiceprints.crypto import VoiceprintKeyError, load_key
from analytic.voiceprints.store import StoreError, open_store
from tests.conftest import TEST_KEY

pytestmark = pytest.mark.slow  # real services or processes (script/test --fast skips)

OTHER_KEY = "2pW5K0mMq7b7cN0S3e7l6Hn0y2Yb3JxXcVqvYQyJ8gE="


def unit_rows(n: int, seed: int, d: int = 256) -> np.ndarray:
    rows = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def raw_vectors(factory, external_id: str) -> bytes:
    """The ``vectors`` column exactly as the database holds it (what a stolen copy shows)."""
    if factory.kind == "sqlite":
        import sqlite3

        with sqlite3.connect(factory.path) as conn:
            (blob,) = conn.execute(f"SELECT vectors FROM {factory.prefix}voiceprints "
                                   "WHERE external_id = ?", (external_id,)).fetchone()
        return bytes(blob)
    import psycopg

    with psycopg.connect(factory.url) as conn:
        (blob,) = conn.execute(f"SELECT vectors FROM {factory.prefix}voiceprints "
                               "WHERE external_id = %s", (external_id,)).fetchone()
    return bytes(blob)


def test_enrol_adds_then_replace_starts_over(store_factory):
    store = store_factory()
    first = store.add_samples("alice", "ge2e", unit_rows(2, 1))
    assert first.sample_count == 2
    again = store.add_samples("alice", "ge2e", unit_rows(1, 2))
    assert again.sample_count == 3
    assert again.created_at == first.created_at
    assert again.updated_at >= first.updated_at
    stored = store.get("alice")
    assert stored is not None
    np.testing.assert_allclose(stored.samples, np.vstack([unit_rows(2, 1), unit_rows(1, 2)]),
                               atol=1e-6)
    expected_centroid = stored.samples.mean(axis=0)
    np.testing.assert_allclose(stored.centroid, expected_centroid /
                               np.linalg.norm(expected_centroid), atol=1e-6)
    replaced = store.add_samples("alice", "ge2e", unit_rows(1, 3), replace=True)
    assert replaced.sample_count == 1
    assert store.info("alice").sample_count == 1


def test_list_info_delete_and_delete_all(store_factory):
    store = store_factory()
    assert store.list() == []
    for name in ("carol", "alice", "bob"):
        store.add_samples(name, "ge2e", unit_rows(1, len(name)))
    assert [p.external_id for p in store.list()] == ["alice", "bob", "carol"]
    info = store.info("bob")
    assert (info.encoder, info.sample_count) == ("ge2e", 1)
    assert store.info("nobody") is None and store.get("nobody") is None
    assert store.delete("bob") is True
    assert store.delete("bob") is False
    assert store.get("bob") is None
    assert store.delete_all() == 2
    assert store.list() == []


def test_voiceprints_persist_across_reopening(store_factory):
    store_factory().add_samples("alice", "ge2e", unit_rows(2, 7))
    reopened = store_factory()
    np.testing.assert_allclose(reopened.get("alice").samples, unit_rows(2, 7), atol=1e-6)


def test_only_the_same_encoder_is_compared_or_merged(store_factory):
    store = store_factory()
    store.add_samples("alice", "ge2e", unit_rows(1, 1))
    store.add_samples("bob", "ecapa", unit_rows(1, 2, d=192))
    assert [p.external_id for p in store.all("ge2e")] == ["alice"]
    assert [p.external_id for p in store.all("ecapa")] == ["bob"]
    with pytest.raises(Conflict):
        store.add_samples("bob", "ge2e", unit_rows(1, 3))
    assert store.add_samples("bob", "ge2e", unit_rows(1, 3), replace=True).encoder == "ge2e"


def test_only_the_newest_samples_are_kept(store_factory):
    store = store_factory()
    store.add_samples("alice", "ge2e", unit_rows(3, 1))
    kept = store.add_samples("alice", "ge2e", unit_rows(2, 2), max_samples=4)
    assert kept.sample_count == 4
    np.testing.assert_allclose(kept.samples, np.vstack([unit_rows(3, 1)[1:], unit_rows(2, 2)]),
                               atol=1e-6)


def test_concurrent_enrolments_of_one_person_keep_every_sample(store_factory):
    # Two stores = two instances sharing one database (or one SQLite file).
    stores = [store_factory(), store_factory()]
    errors = []

    def enrol(i: int) -> None:
        try:
            stores[i % 2].add_samples("alice", "ge2e", unit_rows(1, i))
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=enrol, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert stores[0].get("alice").sample_count == 8


def test_encrypted_store_hides_vectors_and_needs_its_key(store_factory):
    store = store_factory(TEST_KEY)
    assert store.encrypted
    samples = unit_rows(2, 5)
    store.add_samples("alice", "ge2e", samples)
    blob = raw_vectors(store_factory, "alice")
    for vector in samples:
        assert vector.tobytes()[:64] not in blob
    assert blob.startswith(b"gAAAAA")  # a Fernet token, not numpy's b"PK" zip header
    store.close()

    with pytest.raises(StoreError, match="no key"):
        store_factory()
    with pytest.raises(StoreError, match="different key"):
        store_factory(OTHER_KEY)
    reopened = store_factory(TEST_KEY)
    np.testing.assert_allclose(reopened.get("alice").samples, samples, atol=1e-6)
    assert [p.external_id for p in reopened.list()] == ["alice"]


def test_unencrypted_store_shows_vectors_in_clear(store_factory):
    # The control for the test above: without a key the vectors are readable in the file.
    samples = unit_rows(1, 9)
    store_factory().add_samples("alice", "ge2e", samples)
    assert samples[0].tobytes()[:64] in raw_vectors(store_factory, "alice")


def test_a_key_does_not_silently_adopt_clear_voiceprints(store_factory):
    store_factory().add_samples("alice", "ge2e", unit_rows(1, 1))
    with pytest.raises(StoreError, match="unencrypted"):
        store_factory(TEST_KEY)


def test_an_empty_clear_store_becomes_encrypted_when_a_key_is_set(store_factory):
    store_factory().close()
    assert store_factory(TEST_KEY).encrypted
    with pytest.raises(StoreError, match="no key"):
        store_factory()


def test_keys_from_a_file_and_bad_keys(tmp_path):
    key_file = tmp_path / "voiceprint.key"
    key_file.write_text(TEST_KEY + "\n")
    assert load_key(None, str(key_file)) is not None
    assert load_key(None, None) is None
    with pytest.raises(VoiceprintKeyError, match="not a Fernet key"):
        load_key("not-a-key", None)
    with pytest.raises(VoiceprintKeyError, match="cannot read"):
        load_key(None, str(tmp_path / "missing.key"))
    with pytest.raises(VoiceprintKeyError, match="not both"):
        load_key(TEST_KEY, str(key_file))


def test_store_urls(tmp_path):
    from analytic.voiceprints.crypto import Sealer

    store = open_store(f"sqlite:///{tmp_path}/elsewhere.sqlite", tmp_path / "unused", Sealer(None))
    assert store.location == f"{tmp_path}/elsewhere.sqlite"
    store.close()
    with pytest.raises(StoreError, match="unsupported database URL"):
        open_store("mysql://root:secret@localhost/x", tmp_path, Sealer(None))
    with pytest.raises(StoreError) as refused:
        open_store("mysql://root:secret@localhost/x", tmp_path, Sealer(None))
    assert "secret" not in str(refused.value)
    with pytest.raises(StoreError, match="table prefix"):
        open_store(None, tmp_path, Sealer(None), "bad prefix;")


# --- issue 14, hole 8: deleted voiceprints must not stay readable in the store's files ---


def table_files(factory) -> list:
    """The files the voiceprint table (and its TOAST table) live in, after a checkpoint wrote
    every page out; SQLite is one file."""
    if factory.kind == "sqlite":
        return [factory.path]
    from pathlib import Path

    import psycopg

    with psycopg.connect(factory.url, autocommit=True) as conn:
        conn.execute("CHECKPOINT")
        (data_dir,) = conn.execute("SHOW data_directory").fetchone()
        table = f"{factory.prefix}voiceprints"
        rows = conn.execute(
            "SELECT pg_relation_filepath(c.oid), pg_relation_filepath(c.reltoastrelid) "
            "FROM pg_class c WHERE c.relname = %s", (table,)).fetchall()
    paths = [Path(data_dir) / p for row in rows for p in row if p]
    return [p.with_name(f.name) for p in paths for f in p.parent.glob(p.name + "*")]


def holds(paths, needle: bytes) -> bool:
    return any(needle in path.read_bytes() for path in paths if path.exists())


def test_the_documented_key_migration_leaves_no_clear_vectors_in_the_files(store_factory):
    """Empty the clear store (DELETE /enrollments), then add a key: PostgreSQL's DELETE left
    the rows in the heap file; the first open with a key now starts the table afresh."""
    samples = unit_rows(1, 14)
    needle = samples[0].tobytes()[:64]
    clear = store_factory()
    if store_factory.kind == "postgres":  # stored uncompressed, so a byte scan can find it
        import psycopg

        with psycopg.connect(store_factory.url, autocommit=True) as conn:
            conn.execute(f"ALTER TABLE {store_factory.prefix}voiceprints "
                         "ALTER COLUMN vectors SET STORAGE EXTERNAL")
    clear.add_samples("alice", "ge2e", samples)
    assert holds(table_files(store_factory), needle)  # the scan sees what is there
    old_files = table_files(store_factory)
    clear.delete_all()
    clear.close()
    store_factory(TEST_KEY).close()
    assert not holds(table_files(store_factory) + old_files, needle)


def test_sqlite_deletes_securely_whatever_its_build_default(tmp_path, monkeypatch):
    """SQLite's secure delete was on only because the distribution builds it so; the store
    sets it itself (here on connections that start with it off, as other builds do)."""
    import sqlite3

    from analytic.voiceprints.crypto import Sealer

    real_connect = sqlite3.connect

    def insecure_default(*args, **kwargs):
        conn = real_connect(*args, **kwargs)
        conn.execute("PRAGMA secure_delete = OFF")
        return conn

    monkeypatch.setattr(sqlite3, "connect", insecure_default)
    samples = unit_rows(1, 15)
    store = open_store(None, tmp_path, Sealer(None))
    store.add_samples("alice", "ge2e", samples)
    path = tmp_path / "voiceprints.sqlite"
    assert samples[0].tobytes()[:64] in path.read_bytes()
    store.delete("alice")
    store.close()
    assert samples[0].tobytes()[:64] not in path.read_bytes()
