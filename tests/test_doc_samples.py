"""The sample payloads in the manual are shaped like what the code sends and accepts.

Every fenced ``json`` block of the README and ``docs/`` that is a JSON object must fit one of the
message models (its keys a subset of the model's fields), so a renamed field breaks this test
rather than a reader's parser. Samples of answers the README calls "the same JSON as HTTP" show
every field (a field added to a result and forgotten in its sample fails here); requests may
leave optional fields out. Samples that are excerpts (``"files": [...], ...``) are not objects
and are left to the walk-throughs, which check real answers.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import BaseModel

from analytic import schemas
from bus_adapter import messages
from bus_adapter.discovery import speaker_discovery
from bus_adapter.topics import Topics
from tests.markdown_blocks import Block, code_blocks

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
ELLIPSIS_KEYS = {"...", "…"}  # "the rest", in a sample that shows only part of an object

REQUESTS: list[type[BaseModel]] = [
    messages.VerificationRequest, messages.AnalysisRequest, messages.EnrolmentRequest,
    messages.IdentifyRequest, messages.StreamIdentify, messages.StreamVerify,
    messages.StreamEnrol, messages.StreamAnalyze, messages.MemberVerificationRequest,
    messages.ChallengeRequest,
]
# Answers whose every field is always in the JSON (none are dropped when null).
WHOLE_ANSWERS: list[type[BaseModel]] = [
    schemas.VerificationResult, schemas.EnrolmentResult, schemas.Identification,
    schemas.HouseholdVerification, messages.SpeakerState, messages.BusError,
    schemas.SifisResult, schemas.ErrorBody, schemas.Health, schemas.Challenge,
    schemas.DigitEnrolmentResult,
]
# AnalysisResult.payload() leaves out absent options, so its sample may too.
PARTIAL_ANSWERS: list[type[BaseModel]] = [schemas.AnalysisResult]
NESTED = {"files": schemas.FileReport, "candidates": schemas.Candidate}
# Objects inside a whole answer, found by the keys of the object holding them: the SIFIS
# envelope's message, and that message's value.
INNER: dict[tuple[str, ...], dict[str, type[BaseModel]]] = {
    ("RequestPostTopicUUID",): {"RequestPostTopicUUID": schemas.SifisMessage},
    ("topic_name", "topic_uuid", "value"): {"value": schemas.SifisValue},
}


def names(model: type[BaseModel]) -> set[str]:
    return {field.alias or name for name, field in model.model_fields.items()}


def json_samples() -> list[tuple[Block, dict]]:
    samples = []
    for document in DOCUMENTS:
        for block in code_blocks(document):
            if not (block.fenced and block.language == "json"):
                continue
            try:
                sample = json.loads(block.text)
            except json.JSONDecodeError:
                assert block.text.lstrip().startswith('"'), (
                    f"{block.where()}: a json sample that is neither JSON nor an excerpt")
                continue
            samples.append((block, sample))
    return samples


def discovery_keys() -> set[str]:
    _, config = speaker_discovery(Topics(), "kitchen")  # type: ignore[misc]
    return set(json.loads(config))


@pytest.mark.parametrize("block, sample", json_samples(), ids=lambda v: getattr(v, "where",
                                                                               lambda: "")())
def test_a_sample_fits_its_message_model(block: Block, sample: dict):
    keys = set(sample) - ELLIPSIS_KEYS
    if keys <= discovery_keys() and "unique_id" in keys:
        return  # a Home Assistant discovery config; tests/test_examples.py checks its values
    fitting = [m for m in REQUESTS + WHOLE_ANSWERS + PARTIAL_ANSWERS if keys <= names(m)]
    assert fitting, f"{block.where()}: no message model has all of {sorted(keys)}"
    whole = [m for m in fitting if m in WHOLE_ANSWERS]
    if whole and not set(sample) & ELLIPSIS_KEYS:
        missing = {m.__name__: sorted(names(m) - keys) for m in whole}
        assert any(not gap for gap in missing.values()), (
            f"{block.where()}: the sample leaves out fields every answer has: {missing}")
    if fitting[0] in REQUESTS:
        return
    check_nested(block, sample)


def check_nested(block: Block, sample: dict) -> None:
    """List items (``files``, ``candidates``) may only hold their model's fields; the SIFIS
    envelope's message and value are whole answers of their own (all fields, or an ellipsis)."""
    for key, model in NESTED.items():
        for item in sample.get(key) or []:
            extra = set(item) - ELLIPSIS_KEYS - names(model)
            assert not extra, (
                f"{block.where()}: {key} item has {sorted(extra)}, not fields of {model.__name__}")
    for key, model in INNER.get(tuple(sorted(sample)), {}).items():
        inner = sample[key]
        keys = set(inner) - ELLIPSIS_KEYS
        assert keys <= names(model), (
            f"{block.where()}: {key} has {sorted(keys - names(model))}, not fields of "
            f"{model.__name__}")
        if not set(inner) & ELLIPSIS_KEYS:
            assert names(model) <= keys, (
                f"{block.where()}: {key} leaves out {sorted(names(model) - keys)}")
        check_nested(block, inner)
