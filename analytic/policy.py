"""How scores become decisions: the scale (AS-norm or cosine), the threshold, the confidence.

One ``ScorePolicy`` is built at start-up for the loaded encoder and shared by pair
verification and the household, so every door decides on the same scale with the same promise:
a stranger is accepted with probability ``VOICEGATE_FALSE_ACCEPT`` per attempt, whether the
attempt compares one pair or tries every enrolled member at once (``calibration.py``).

Scores are AS-norm against the cohort shipped for the encoder when there is one, else raw
cosine (and every answer says which, as ``score_norm``). Thresholds and confidences come from
the calibration shipped for the encoder; an encoder without one (``ecapa``, or ``ge2e`` with
its older single thresholds) keeps its fixed thresholds and answers with no confidence.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from analytic.audio import TARGET_RATE
from analytic.calibration import Calibration, ScoreScale, load_calibration
from analytic.encoders import SpeakerEncoder
from analytic.scorenorm import ASNORM_THRESHOLDS, load_cohort
from analytic.settings import CoreSettings
from analytic.voiceprints.scoring import VoiceprintScorer

log = logging.getLogger(__name__)


def band_name(bandwidth: int) -> str:
    return "wideband" if bandwidth >= TARGET_RATE else "narrowband"


@dataclass(frozen=True)
class ScorePolicy:
    """The scorer, the calibration of its scale (if any) and the false-accept promise."""

    scorer: VoiceprintScorer
    calibration: Calibration | None
    false_accept: float
    # Thresholds by band for an encoder without a calibration; ignored when there is one.
    fixed_thresholds: dict[str, float]
    # Narrowband pairs (both sides band-limited to 8 kHz) normalise against a cohort heard the
    # same way, when the encoder ships one; else against the wideband cohort.
    narrowband_scorer: VoiceprintScorer | None = None

    def scorer_for(self, bandwidth: int) -> VoiceprintScorer:
        """The scorer of a pair compared at ``bandwidth``."""
        if bandwidth < TARGET_RATE and self.narrowband_scorer is not None:
            return self.narrowband_scorer
        return self.scorer

    @property
    def score_norm(self) -> str:
        return self.scorer.name

    def scale(self, bandwidth: int) -> ScoreScale | None:
        if self.calibration is None:
            return None
        return self.calibration.scale(f"{self.scorer.name}_{band_name(bandwidth)}")

    def threshold(self, bandwidth: int = TARGET_RATE, members: int = 1) -> float:
        """The score a stranger reaches with ``false_accept`` probability per attempt when
        ``members`` voiceprints are tried (1 for a pair or "is this Alice?")."""
        scale = self.scale(bandwidth)
        if scale is None:
            return self.fixed_thresholds[band_name(bandwidth)]
        return round(scale.threshold_for(self.false_accept, members), 4)

    def confidence(self, score: float, bandwidth: int = TARGET_RATE) -> float | None:
        """Calibrated probability of the same speaker, or None without a calibration."""
        scale = self.scale(bandwidth)
        return None if scale is None else round(scale.confidence(score), 4)


def household_threshold(settings: CoreSettings, policy: ScorePolicy, members: int,
                        bandwidth: int = TARGET_RATE) -> float:
    """Household verify (``members`` 1) and identify: ``VOICEGATE_IDENTIFY_THRESHOLD`` when
    set, else the policy's threshold for that many voiceprints tried at once."""
    if settings.identify_threshold is not None:
        return settings.identify_threshold
    return policy.threshold(bandwidth, members)


def build_policy(settings: CoreSettings, encoder: SpeakerEncoder) -> ScorePolicy:
    """The policy as configured: AS-norm when asked for and a cohort fits the encoder."""
    calibration = load_calibration(encoder.name)
    norm = None
    if settings.score_norm == "asnorm":
        norm = load_cohort(encoder.name, encoder.embedding_size)
        usable = norm is not None and (
            (calibration is not None and calibration.scale("asnorm_wideband") is not None)
            or encoder.name in ASNORM_THRESHOLDS)
        if not usable:
            norm = None
            log.warning("no AS-norm cohort for this encoder: scores are raw cosine",
                        extra={"event": "asnorm_unavailable", "model": encoder.name})
    if norm is not None and (calibration is None or calibration.scale("asnorm_wideband") is None):
        fixed = dict.fromkeys(("wideband", "narrowband"), ASNORM_THRESHOLDS[encoder.name])
    else:
        wide = encoder.default_threshold
        narrowband = encoder.narrowband_threshold
        fixed = {"wideband": wide, "narrowband": wide if narrowband is None else narrowband}
    narrow: VoiceprintScorer | None = None
    if norm is not None:
        narrow_norm = load_cohort(encoder.name, encoder.embedding_size, band="narrowband")
        narrow = VoiceprintScorer(narrow_norm) if narrow_norm is not None else None
    return ScorePolicy(VoiceprintScorer(norm), calibration, settings.false_accept, fixed, narrow)
