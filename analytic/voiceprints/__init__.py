"""Household voiceprints: what is stored per person, how it is scored, where it is kept.

``model`` (the voiceprint and its enrolment model), ``scoring`` (raw cosine or AS-norm against
a voiceprint), ``crypto`` (Fernet at rest), ``store`` (the interface, SQLite and PostgreSQL).
"""
