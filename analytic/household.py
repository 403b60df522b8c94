"""Household voiceprints: enrol members, then verify ("is this Alice?") or identify ("who?").

Every door calls these plain methods with bytes, names and pydantic option models and gets
pydantic results back: HTTP (``analytic/web/household.py``), the command line, and later the
bus. A stranger is reported as unknown: identification names the best-scoring member only when
that score reaches the threshold, never the nearest member regardless.

Scores are AS-norm against the cohort shipped for the encoder when there is one (raw cosine
otherwise, said in every answer as ``score_norm``); a member's score is the mean of the scores
of their enrolment samples (the centroid is stored too, but scores on a scale that rises with
the number of samples). Both choices and the thresholds were made on the
development speakers only (docs/household.md). Identify scores against the members held in
memory (``voiceprints/cache.py``), reloaded only when the store says it changed.

Activity is logged as one JSON line per event (``enrolled``, ``verified``, ``identified``,
``deleted``) on the ``analytic.activity`` logger: ids, counts, scores and decisions, never audio
or vectors.
"""

from __future__ import annotations

import builtins
import logging
import uuid
from collections.abc import Callable

import numpy as np
from pydantic import BaseModel

from analytic.audio import TARGET_RATE, Clip, read_mono
from analytic.errors import BadRequest, Conflict, Forbidden, NotFound
from analytic.liveness import LivenessService
from analytic.policy import household_threshold
from analytic.schemas import (
    Candidate,
    Challenge,
    ChallengeOptions,
    DeleteResult,
    DigitEnrolmentResult,
    EnrolmentInfo,
    EnrolmentList,
    EnrolmentResult,
    EnrolOptions,
    HouseholdOptions,
    HouseholdVerification,
    Identification,
    Liveness,
)
from analytic.service import VerificationService, file_report
from analytic.settings import CoreSettings
from analytic.streams import StreamRegistry
from analytic.thresholds import choose_threshold
from analytic.voiceprints.cache import VoiceprintCache
from analytic.voiceprints.crypto import Sealer, load_key
from analytic.voiceprints.model import Voiceprint
from analytic.voiceprints.store import VoiceprintInfo, VoiceprintStore, open_store

log = logging.getLogger(__name__)
activity = logging.getLogger("analytic.activity")

Recording = tuple[str, bytes]  # (name, file bytes), as VerificationService takes them
HouseholdListener = Callable[[BaseModel], None]


class HouseholdService:
    """Enrol, verify, identify and forget; safe to call from many threads."""

    def __init__(
        self,
        verification: VerificationService,
        store: VoiceprintStore,
        streams: StreamRegistry | None = None,
        liveness: LivenessService | None = None,
    ) -> None:
        self.verification = verification
        self.settings: CoreSettings = verification.settings
        self.encoder = verification.encoder
        self.store = store
        self.members = VoiceprintCache(store)
        # The pair door's scale and calibration (analytic/policy.py): one promise everywhere.
        self.policy = verification.policy
        self.scorer = self.policy.scorer
        self.streams = streams or StreamRegistry(
            self.settings.stream_idle_timeout_s, self.settings.stream_max_s,
            self.settings.stream_max_sessions,
        )
        self.liveness = liveness or LivenessService(self.settings, store)
        self._listeners: list[HouseholdListener] = []

    def threshold_for(self, members: int = 1, bandwidth: int = TARGET_RATE) -> float:
        """The configured override, else the threshold that keeps a stranger's chance of being
        named at ``VOICEGATE_FALSE_ACCEPT`` when ``members`` voiceprints are tried at once."""
        return household_threshold(self.settings, self.policy, members, bandwidth)

    @property
    def threshold(self) -> float:
        """The verify threshold ("is this Alice?": one voiceprint tried), wideband."""
        return self.threshold_for(1)

    @property
    def score_norm(self) -> str:
        return self.scorer.name

    def add_listener(self, listener: HouseholdListener) -> None:
        """Hear every result (enrolment, verification, identification, deletion)."""
        self._listeners.append(listener)

    # --- enrolment ---
    def enrol(self, options: EnrolOptions, recordings: list[Recording]) -> EnrolmentResult:
        """Add one or more recordings to a member (or start over with ``replace``).

        Every recording is decoded before anything is stored, so one bad file leaves the
        member as they were.
        """
        clips = self._decode_enrolment(recordings)
        samples = np.stack([self.verification.voiceprint(clip) for clip in clips])
        voiceprint = self.store.add_samples(
            options.external_id, self.encoder.name, samples, replace=options.replace,
            max_samples=self.settings.max_voiceprint_samples,
        )
        result = EnrolmentResult(
            external_id=voiceprint.external_id,
            encoder=voiceprint.encoder,
            samples_added=len(clips),
            sample_count=voiceprint.sample_count,
            replaced=options.replace,
            created_at=voiceprint.created_at,
            updated_at=voiceprint.updated_at,
            request_id=options.request_id,
            analysis_id=str(uuid.uuid4()),
            analyzer_id=self.settings.analyzer_id,
            files=[file_report(clip) for clip in clips],
        )
        self._event("enrolled", result, external_id=result.external_id,
                    samples_added=result.samples_added, sample_count=result.sample_count,
                    replaced=result.replaced, encoder=result.encoder)
        return result

    def info(self, external_id: str, export: bool = False) -> EnrolmentInfo:
        """One member's sample count, encoder and dates; vectors only with export allowed."""
        if export and not self.settings.allow_voiceprint_export:
            raise Forbidden("exporting voiceprints is switched off "
                            "(VOICEGATE_ALLOW_VOICEPRINT_EXPORT)")
        if not export:
            stored = self.store.info(external_id)
            if stored is None:
                raise NotFound(f"{external_id!r} is not enrolled")
            return info_model(stored)
        voiceprint = self.store.get(external_id)
        if voiceprint is None:
            raise NotFound(f"{external_id!r} is not enrolled")
        log.warning("voiceprint exported", extra={"event": "exported",
                                                  "external_id": external_id})
        return info_model(voiceprint, export=True)

    def list(self) -> EnrolmentList:
        people = [info_model(stored) for stored in self.store.list()]
        return EnrolmentList(count=len(people), enrollments=people,
                             score_norm=self.scorer.name, threshold=self.threshold)

    def delete(self, external_id: str) -> DeleteResult:
        if not self.store.delete(external_id):
            raise NotFound(f"{external_id!r} is not enrolled")
        result = DeleteResult(deleted=1)
        self._event("deleted", result, external_id=external_id, deleted=1)
        return result

    def delete_all(self) -> DeleteResult:
        result = DeleteResult(deleted=self.store.delete_all())
        self._event("deleted", result, external_id=None, deleted=result.deleted)
        return result

    # --- recognition ---
    def verify(
        self, external_id: str, recording: Recording, options: HouseholdOptions | None = None,
        privileged: bool = False,
    ) -> HouseholdVerification:
        """Is this recording ``external_id``? 404 before any decoding when not enrolled; only
        ``privileged`` (the admin) may loosen the threshold."""
        options = options or HouseholdOptions()
        voiceprint = self.store.get(external_id)
        if voiceprint is None:
            raise NotFound(f"{external_id!r} is not enrolled")
        if voiceprint.encoder != self.encoder.name:
            raise Conflict(f"{external_id!r} was enrolled with encoder {voiceprint.encoder!r}, "
                           f"this service runs {self.encoder.name!r}: enrol again")
        challenge = self.liveness.take(options.challenge_id)  # used up even if refused below
        clip, test = self._embed(recording)
        (score,), (raw,) = self.scorer.score_members([voiceprint.samples], test)
        bandwidth = min(clip.sample_rate, TARGET_RATE)
        threshold, source = self._threshold(options, privileged, self.threshold_for(1, bandwidth))
        liveness = None
        if challenge is not None:
            liveness = self.liveness.check(challenge, external_id, *self._samples(recording))
        result = HouseholdVerification(
            external_id=external_id,
            decision=bool(score >= threshold) and (liveness is None or liveness.passed),
            score=round(float(score), 6),
            raw_score=round(float(raw), 6),
            confidence=self.policy.confidence(float(score), bandwidth),
            threshold=threshold,
            threshold_source=source,
            score_norm=self.scorer.name,
            model=self.encoder.name,
            request_id=options.request_id,
            requestor_id=options.requestor_id,
            requestor_type=options.requestor_type,
            liveness=liveness,
            analysis_id=str(uuid.uuid4()),
            analyzer_id=self.settings.analyzer_id,
            files=[file_report(clip)],
        )
        self._event("verified", result, kind="household", external_id=external_id,
                    decision=result.decision, score=result.score, threshold=threshold,
                    score_norm=result.score_norm, request_id=result.request_id,
                    liveness=None if liveness is None else liveness.passed)
        return result

    def identify(
        self, recording: Recording, options: HouseholdOptions | None = None,
        privileged: bool = False,
    ) -> Identification:
        """Who is speaking: the best member at or above threshold, else ``match`` null."""
        options = options or HouseholdOptions()
        challenge = self.liveness.take(options.challenge_id)  # used up even if refused below
        household = self.members.household(self.encoder.name)
        self._refuse_other_encoders(household.other_encoders)
        clip, test = self._embed(recording)
        bandwidth = min(clip.sample_rate, TARGET_RATE)
        threshold, source = self._threshold(options, privileged,
                                            self.threshold_for(household.members, bandwidth))
        scores, raws = household.scores(self.scorer, test)
        order = np.argsort(-scores, kind="stable")[: self.settings.identify_candidates]
        candidates = [
            Candidate(external_id=household.ids[i], score=round(float(scores[i]), 6),
                      raw_score=round(float(raws[i]), 6))
            for i in order
        ]
        best = candidates[0] if candidates else None
        known = best is not None and best.score >= threshold
        liveness = None
        if challenge is not None:
            # The digits are read with the recognised member's templates; a stranger (or a
            # member the challenge was not issued for) cannot pass.
            if known and best is not None:
                liveness = self.liveness.check(challenge, best.external_id,
                                               *self._samples(recording))
            else:
                liveness = Liveness(passed=False, expected=" ".join(challenge.digits),
                                    heard="", recogniser="none")
            known = known and liveness.passed
        result = Identification(
            match=best.external_id if known and best else None,
            decision=known,
            score=best.score if best else None,
            confidence=self.policy.confidence(best.score, bandwidth) if best else None,
            threshold=threshold,
            threshold_source=source,
            score_norm=self.scorer.name,
            candidates=candidates,
            enrolled=household.members,
            model=self.encoder.name,
            request_id=options.request_id,
            requestor_id=options.requestor_id,
            requestor_type=options.requestor_type,
            site=options.site,
            liveness=liveness,
            analysis_id=str(uuid.uuid4()),
            analyzer_id=self.settings.analyzer_id,
            files=[file_report(clip)],
        )
        self._event("identified", result, match=result.match, decision=known,
                    score=result.score, threshold=threshold, score_norm=result.score_norm,
                    candidates=[(c.external_id, c.score) for c in candidates],
                    enrolled=result.enrolled, request_id=result.request_id,
                    liveness=None if liveness is None else liveness.passed)
        return result

    def _threshold(self, options: HouseholdOptions, privileged: bool,
                   default: float) -> tuple[float, str]:
        may_lower = privileged or self.settings.allow_threshold_override
        return choose_threshold(options.threshold, default, may_lower)

    # --- liveness ---
    def challenge(self, options: ChallengeOptions) -> Challenge:
        """A one-time digit challenge, optionally for one (enrolled) member."""
        if options.external_id is not None and self.store.info(options.external_id) is None:
            raise NotFound(f"{options.external_id!r} is not enrolled")
        return self.liveness.issue(options)

    def enrol_digits(self, options: EnrolOptions,
                     recordings: builtins.list[Recording]) -> DigitEnrolmentResult:
        """Digit templates from recordings of "zero one two ... nine" (member must exist)."""
        if self.store.info(options.external_id) is None:
            raise NotFound(f"{options.external_id!r} is not enrolled")
        clips = self._decode_enrolment(recordings)
        raw = [(*self._samples(recording), recording[0]) for recording in recordings]
        per_digit = self.liveness.enrol_templates(options.external_id, raw, options.replace)
        result = DigitEnrolmentResult(
            external_id=options.external_id, templates_per_digit=per_digit,
            request_id=options.request_id, analysis_id=str(uuid.uuid4()),
            analyzer_id=self.settings.analyzer_id, files=[file_report(c) for c in clips])
        self._event("digits_enrolled", result, external_id=options.external_id,
                    templates_per_digit=per_digit)
        return result

    def _decode_enrolment(self, recordings: builtins.list[Recording]) -> builtins.list[Clip]:
        """Every recording of an enrolment (voiceprint or digits) decoded, or the refusal: none
        at all, more than ``max_enrol_files``, or one the intake refuses."""
        if not recordings:
            raise BadRequest("at least one recording is required", code="missing_file")
        limit = self.settings.max_enrol_files
        if len(recordings) > limit:
            raise BadRequest(f"{len(recordings)} recordings; at most {limit} per enrolment",
                             code="too_many_files")
        return [self.verification.decode(data, name) for name, data in recordings]

    def _samples(self, recording: Recording) -> tuple[np.ndarray, int]:
        """The whole recording as decoded, pauses kept (the digit check needs them)."""
        name, data = recording
        return read_mono(data, name, self.settings.max_duration_s)

    def _embed(self, recording: Recording) -> tuple[Clip, np.ndarray]:
        name, data = recording
        clip = self.verification.decode(data, name)
        return clip, self.verification.voiceprint(clip)

    def _refuse_other_encoders(self, encoders: frozenset[str]) -> None:
        """Identify would silently leave out voiceprints another encoder made (their scores
        mean nothing to this one): refuse instead, saying how to fix it."""
        others = sorted(encoders - {self.encoder.name})
        if others:
            raise Conflict(
                f"the store holds voiceprints enrolled with encoder {', '.join(others)}; this "
                f"service runs {self.encoder.name!r}: enrol those members again (POST "
                f"/enrollments with replace=true), or set VOICEGATE_ENCODER={others[0]}")

    def _event(self, event: str, result: BaseModel, **fields: object) -> None:
        """One activity line (ids, scores, decisions; never audio or vectors), then listeners."""
        activity.info(event, extra={"event": event, **fields})
        for listener in self._listeners:
            try:
                listener(result)
            except Exception:  # a broken listener must not cost the caller its answer
                log.exception("household listener failed", extra={"event": "listener_failed"})

    def close(self) -> None:
        self.members.clear()
        self.store.close()


def info_model(stored: VoiceprintInfo | Voiceprint, export: bool = False) -> EnrolmentInfo:
    info = EnrolmentInfo(
        external_id=stored.external_id,
        encoder=stored.encoder,
        sample_count=stored.sample_count,
        created_at=stored.created_at,
        updated_at=stored.updated_at,
    )
    if export and isinstance(stored, Voiceprint):
        info.samples = stored.samples.astype(float).round(6).tolist()
        info.centroid = stored.centroid.astype(float).round(6).tolist()
    return info


def build_household(
    verification: VerificationService, store: VoiceprintStore | None = None
) -> HouseholdService:
    """The household service as configured: store (opened now, so a locked store stops
    start-up), AS-norm cohort for the encoder when there is one, stream sessions."""
    settings = verification.settings
    if store is None:
        sealer = Sealer(load_key(
            settings.voiceprint_key.get_secret_value() if settings.voiceprint_key else None,
            settings.voiceprint_key_file,
        ))
        store = open_store(settings.database_url, settings.data_dir, sealer,
                           settings.voiceprint_table_prefix)
    service = HouseholdService(verification, store)
    log.info("voiceprint store open", extra={
        "event": "store_open", "store": store.location, "encrypted": store.encrypted,
        "score_norm": service.score_norm, "threshold": service.threshold})
    return service
