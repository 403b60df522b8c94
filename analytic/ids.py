"""Rules for the ids callers give household members (``external_id``).

An id names a voiceprint, and automations act on it (``voicegate/speaker/<site>`` says
``dad``), so two ids that look the same must be the same id, and an id must never look like an
answer: issue 14 enrolled ``dad`` next to a Cyrillic ``dаd``, a fullwidth ``ｄａｄ``, ``dad`` with a
zero-width space and ``dad `` with a trailing space, and a member called ``unknown``.

* Ids are NFKC-normalised first: fullwidth and other compatibility forms become the plain
  letters, so ``ｄａｄ`` *is* ``dad``.
* Refused: control, format (zero-width, bidirectional marks), private-use, unassigned and
  line/paragraph separator characters; any whitespace but a plain space, and a space at either
  end; ``/`` (it is a URL path segment).
* Refused: letters of more than one of the Latin, Greek and Cyrillic scripts in one id (the
  look-alike alphabets).
* Refused: the reserved words ``unknown``, ``none``, ``null`` in any case (what the speaker state
  says when nobody is recognised).
"""

from __future__ import annotations

import unicodedata

RESERVED_IDS = frozenset({"unknown", "none", "null"})
REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
LOOKALIKE_SCRIPTS = ("LATIN", "GREEK", "CYRILLIC")


def normalise_id(value: object) -> object:
    """NFKC form of a string (anything else is left for the type check to refuse)."""
    return unicodedata.normalize("NFKC", value) if isinstance(value, str) else value


def check_id(value: str) -> str:
    """``value`` if it follows the rules above, else ``ValueError`` saying which one."""
    if value != value.strip(" "):
        raise ValueError("must not start or end with a space")
    for char in value:
        if unicodedata.category(char) in REFUSED_CATEGORIES:
            raise ValueError(f"must not hold control or invisible characters (U+{ord(char):04X})")
        if char.isspace() and char != " ":
            raise ValueError("the only whitespace allowed is a plain space")
    scripts = {script for char in value if char.isalpha()
               for script in LOOKALIKE_SCRIPTS if unicodedata.name(char, "").startswith(script)}
    if len(scripts) > 1:
        raise ValueError("must not mix " + " and ".join(sorted(s.title() for s in scripts))
                         + " letters")
    if value.casefold() in RESERVED_IDS:
        raise ValueError(f"{value!r} is reserved")
    return value
