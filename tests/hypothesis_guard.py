"""Keep hypothesis from tripping over SpeechBrain's lazy modules.

Hypothesis scans ``sys.modules`` for constants and reads each module's ``__file__``; SpeechBrain
registers lazy placeholders (``speechbrain.integrations.k2_fsa``) whose attribute access
imports an optional package that is not installed and raises ImportError. Once an ECAPA test
has imported SpeechBrain, every later hypothesis test would fail on that. Marking those
placeholders as already scanned is all it takes; nothing is removed from ``sys.modules``.
"""

from __future__ import annotations

import sys
import warnings


def skip_broken_lazy_modules() -> None:
    try:
        from hypothesis.internal.conjecture import providers
    except ImportError:
        return
    seen = getattr(providers, "_seen_modules", None)
    if seen is None:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SpeechBrain warns about its deprecated redirects
        for module in list(sys.modules.values()):
            try:
                getattr(module, "__file__", None)
            except Exception:
                seen.add(id(module))
