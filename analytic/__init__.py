"""Voicegate analytic: offline speaker verification for the smart home.

The core never talks HTTP or MQTT itself; doors (``analytic.web``, ``bus_adapter``) call
``analytic.service.VerificationService``.
"""

import os

__version__ = "0.1.0"

# torch.set_num_threads() only reaches the thread that calls it; waitress and bus worker threads
# would each start an OpenMP team of one spinning thread per core, and on a 2-core machine a
# 4 s verification went from ~60 ms to ~240 ms. OpenMP reads this once, when torch loads, and
# every thread inherits it. An explicit OMP_NUM_THREADS in the environment wins.
os.environ.setdefault("OMP_NUM_THREADS", os.environ.get("VOICEGATE_TORCH_THREADS", "1"))
