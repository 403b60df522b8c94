"""Offline tooling, never used by the running service: evaluation on corpora, calibration,
cohorts, training of the heads, degraded conditions, plots. Run as ``python -m analytic.lab.X``
or through ``voicegate evaluate``."""
