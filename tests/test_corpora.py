"""The corpus tooling finds what it reads: the committed speaker splits, and every source file
an embedding cache's key is made of (a moved module once made both silently wrong)."""

from __future__ import annotations

from analytic.lab import corpora


def test_the_speaker_splits_are_found():
    assert (corpora.SPLITS_DIR / "librispeech.csv").is_file()


def test_the_cache_key_covers_the_intake_and_the_encoder(encoder, monkeypatch, tmp_path):
    key = corpora.intake_version(encoder)
    assert len(key) == 10
    package = corpora.Path(corpora.__file__).resolve().parents[1]
    changed = tmp_path / "analytic"
    changed.mkdir()
    (changed / "speechness.py").write_bytes((package / "speechness.py").read_bytes())
    (changed / "audio.py").write_bytes((package / "audio.py").read_bytes() + b"\n# changed\n")
    (changed / "lab").mkdir()
    monkeypatch.setattr(corpora, "__file__", str(changed / "lab" / "corpora.py"))
    assert corpora.intake_version(encoder) != key
