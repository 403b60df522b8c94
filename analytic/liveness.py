"""Liveness: did the recording say the digits of a challenge issued a moment ago?

The household service (``analytic/household.py``) asks this after its speaker check. The
digits are read with the member's own templates when they enrolled some
(``POST /enrollments/<id>/digits``), else with the speaker-independent pocketsphinx model
(``VOICEGATE_LIVENESS_FALLBACK``). It defends against replayed recordings (they hold other
words or other digits), not against a live impostor or real-time voice conversion
(docs/liveness.md).
"""

from __future__ import annotations

import logging

import numpy as np

from analytic.challenges import ChallengeRegistry, IssuedChallenge
from analytic.digits import (
    DigitRecognizer,
    DigitTemplates,
    TemplateDigits,
    digit_templates,
    merge_templates,
    pack_templates,
    pocketsphinx_available,
    shared_pocketsphinx,
    unpack_templates,
    warm_up_in_background,
)
from analytic.errors import BadRequest
from analytic.schemas import Challenge, ChallengeOptions, Liveness, LivenessInfo
from analytic.settings import CoreSettings
from analytic.voiceprints.store import VoiceprintStore

log = logging.getLogger(__name__)


def spaced(digits: str) -> str:
    return " ".join(digits)


class LivenessService:
    """Issues challenges and checks answers; safe to call from many threads."""

    def __init__(self, settings: CoreSettings, store: VoiceprintStore,
                 fallback: DigitRecognizer | None = None) -> None:
        self.settings = settings
        self.store = store
        self.challenges = ChallengeRegistry(settings.challenge_digits, settings.challenge_ttl_s,
                                            settings.challenge_max_open)
        self.fallback = fallback
        warm_up_in_background()
        if fallback is None and settings.liveness_fallback and pocketsphinx_available():
            self.fallback = shared_pocketsphinx()  # loaded once, at start-up

    def info(self) -> LivenessInfo:
        recognisers = ["templates"] + ([self.fallback.name] if self.fallback else [])
        return LivenessInfo(supported=True, recognisers=recognisers,
                            digits=self.settings.challenge_digits,
                            challenge_ttl_s=self.settings.challenge_ttl_s,
                            required=self.settings.liveness_required)

    def issue(self, options: ChallengeOptions) -> Challenge:
        issued = self.challenges.issue(options.external_id)
        log.info("challenge issued", extra={"event": "challenge_issued",
                                            "external_id": options.external_id,
                                            "request_id": options.request_id})
        return Challenge(challenge_id=issued.challenge_id, digits=spaced(issued.digits),
                         expires_in_s=issued.ttl_s, external_id=issued.external_id,
                         request_id=options.request_id)

    def take(self, challenge_id: str | None) -> IssuedChallenge | None:
        """The named challenge, used up now (before any decoding, so a refused recording
        costs the challenge too); ``None`` without one, unless one is required."""
        if challenge_id is None:
            if self.settings.liveness_required:
                raise BadRequest("a challenge_id is required (VOICEGATE_LIVENESS_REQUIRED); "
                                 "get one from POST /challenges", code="challenge_required")
            return None
        return self.challenges.take(challenge_id)

    def check(self, challenge: IssuedChallenge, external_id: str | None, samples: np.ndarray,
              rate: int) -> Liveness:
        """Read the digits with ``external_id``'s templates (or the fallback) and compare."""
        expected = spaced(challenge.digits)
        if challenge.external_id is not None and external_id != challenge.external_id:
            return Liveness(passed=False, expected=expected, heard="", recogniser="none")
        recogniser = self.recogniser_for(external_id)
        if recogniser is None:
            return Liveness(passed=False, expected=expected, heard="", recogniser="none")
        heard = recogniser.recognize(samples, rate, len(challenge.digits))
        passed = heard.digits == challenge.digits and heard.fits_templates is not False
        return Liveness(passed=passed, expected=expected, heard=spaced(heard.digits),
                        recogniser=heard.recogniser,
                        fits_templates=heard.fits_templates)

    def recogniser_for(self, external_id: str | None) -> DigitRecognizer | None:
        templates = self.templates(external_id) if external_id else None
        if templates is not None:
            return TemplateDigits(templates)
        return self.fallback

    def templates(self, external_id: str) -> DigitTemplates | None:
        blob = self.store.digit_templates(external_id)
        return unpack_templates(blob) if blob is not None else None

    def enrol_templates(self, external_id: str, recordings: list[tuple[np.ndarray, int, str]],
                        replace: bool = False) -> int:
        """Add templates from recordings of "zero one ... nine"; returns templates per digit.

        Every recording is checked before anything is stored.
        """
        new: DigitTemplates = {str(d): [] for d in range(10)}
        for samples, rate, name in recordings:
            made = digit_templates(samples, rate)
            if made is None:
                raise BadRequest(f"{name}: say the ten digits zero to nine in order, with a "
                                 "short pause after each (ten spoken parts were not found)",
                                 code="bad_digits")
            for d, items in made.items():
                new[d] += items
        old = None if replace else self.templates(external_id)
        merged = merge_templates(old, new, self.settings.digit_templates_kept)
        self.store.set_digit_templates(external_id, pack_templates(merged))
        return min(len(items) for items in merged.values())
