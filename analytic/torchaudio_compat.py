"""Let SpeechBrain import beside the CPU build of torch.

SpeechBrain 1.1.2 pulls torchaudio 2.11, whose native extension (``_torchaudio.abi3.so``) is
built against a different torch and fails to load beside torch 2.13 with an ``OSError``, which
aborts ``import speechbrain``. The pure-Python parts SpeechBrain needs for ECAPA (feature
extraction is its own code) work without it. Seeding ``torchaudio._extension`` in
``sys.modules`` as "extension unavailable" before torchaudio is first imported makes torchaudio
take its own no-extension path. Import this module before anything imports speechbrain.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from typing import Any

EXTENSION_MODULE = "torchaudio._extension"


def _unavailable(message: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        def refuse(*_args: Any, **_kwargs: Any) -> Any:
            raise RuntimeError(message)

        return refuse

    return decorate


def seed_torchaudio_without_extension() -> None:
    """Install the stand-in, unless torchaudio (real or stand-in) is already imported."""
    if EXTENSION_MODULE in sys.modules:
        return
    stub = types.ModuleType(EXTENSION_MODULE)
    stub.__doc__ = "Stand-in from analytic.torchaudio_compat: native extension unavailable."
    stub._IS_TORCHAUDIO_EXT_AVAILABLE = False  # type: ignore[attr-defined]
    stub._IS_ALIGN_AVAILABLE = False  # type: ignore[attr-defined]
    stub.fail_if_no_align = _unavailable(  # type: ignore[attr-defined]
        "torchaudio's native extension is unavailable beside this torch build"
    )
    stub._check_cuda_version = lambda: None  # type: ignore[attr-defined]
    stub._load_lib = lambda _name: False  # type: ignore[attr-defined]
    sys.modules[EXTENSION_MODULE] = stub


seed_torchaudio_without_extension()
