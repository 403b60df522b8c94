"""Each path's cost as a ratio to the encoder floor measured in the same run, throughput by
client count over real HTTP, and memory at ready (issue 17).

    python bench/perf.py [--runs 30] [--seconds 20] [--encoder campplus]

In process (one thread calls; the service may use both cores for a pair, ``VOICEGATE_CORES``),
interleaved run by run so a busy machine slows floor and path alike; medians of ``--runs``:

- the floor: the encoder alone on each clip's input as the service prepares it (one pass);
- verify of bench/verify.py's pair (the first 4 s of two LibriSpeech clips of speaker 2609), with
  the defaults (each file's gender and arousal), and without the description, against two passes;
- analyze of the first 4 s clip (``/analyze``'s defaults) against one pass;
- identify of that clip against households of 10, 100 and 1000 members (3 samples each, in an
  encrypted SQLite store, scored as the service scores), against one pass; plus one enrolment
  and the identify after it (which reloads the members from the store);
- verify without the description on one core (``VOICEGATE_CORES=1``): what the second core
  gives a lone pair.

The members' voiceprints are random unit vectors: what identify costs does not depend on what
the vectors hold. Every recording the service hears is real speech.

Over HTTP: one ``python -m analytic serve`` (waitress, the defaults, no bus, a throw-away data
dir) gets N clients sending that pair one request at a time for ``--seconds`` each, N = 1, 2,
4, 8: pairs served a second, its ratio to one client's, the 503 ``busy`` refusals (beyond
``VOICEGATE_MAX_CONCURRENT`` + ``VOICEGATE_MAX_WAITING`` a client backs off ``Retry-After``),
and how many cores the server kept busy (its CPU time over the wall time).
Start-up to ready and the server's VmRSS at ready are read from that same process.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# First: analytic sets OMP_NUM_THREADS before numpy loads OpenBLAS, as in the server. Loaded
# first, OpenBLAS starts a thread per core, and on a busy 2-core machine a 3000-row product
# took 17 ms instead of 0.1 ms.
import analytic  # noqa: E402, F401, I001
import numpy as np  # noqa: E402

from analytic.audio import TARGET_RATE, band_limit  # noqa: E402
from analytic.encoders import load_encoder  # noqa: E402
from analytic.household import HouseholdService  # noqa: E402
from analytic.service import VerificationService  # noqa: E402
from analytic.cli.settings import Settings  # noqa: E402
from analytic.voiceprints.crypto import Sealer, load_key  # noqa: E402
from analytic.voiceprints.store import open_store  # noqa: E402
from bench.load import Tally, http_client, memory_kb  # noqa: E402
from bench.verify import CLIPS, four_second_wav, start_server  # noqa: E402

HOUSEHOLDS = (10, 100, 1000)
SAMPLES_PER_MEMBER = 3
CLIENTS = (1, 2, 4, 8)
BENCH_KEY = "RdqYpv1-FdvDCyrAozo6j7e1knpz-CxQ3P7FvKIaxY8="  # a throw-away store's key


def timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return 1000 * (time.perf_counter() - started)


def household(verification: VerificationService, folder: Path, members: int,
              dimension: int) -> HouseholdService:
    """``members`` members of random unit voiceprints in an encrypted SQLite store."""
    store = open_store(None, folder, Sealer(load_key(BENCH_KEY, None)), f"m{members}_")
    rng = np.random.default_rng(members)
    for i in range(members):
        rows = rng.normal(size=(SAMPLES_PER_MEMBER, dimension)).astype(np.float32)
        rows /= np.linalg.norm(rows, axis=1, keepdims=True)
        store.add_samples(f"member-{i:04d}", verification.encoder.name, rows)
    return HouseholdService(verification, store)


def in_process(encoder_name: str, pair: list[bytes], runs: int, folder: Path) -> None:
    settings = Settings(encoder=encoder_name)
    encoder = load_encoder(settings)
    default = VerificationService(settings, encoder)
    plain = VerificationService(Settings(encoder=encoder_name, describe_files=False), encoder,
                                analysis=default.analysis, policy=default.policy)
    clips = [default.decode(data, f"{i}.wav") for i, data in enumerate(pair)]
    inputs = [band_limit(c.speech if encoder.trimmed_input else c.audio, TARGET_RATE)
              for c in clips]
    files = [("a.wav", pair[0]), ("b.wav", pair[1])]
    probe = files[0]
    houses = {n: household(default, folder, n, encoder.embedding_size) for n in HOUSEHOLDS}
    sequential = VerificationService(Settings(encoder=encoder_name, describe_files=False,
                                              cores=1), encoder, analysis=default.analysis,
                                     policy=default.policy)
    changed = houses[HOUSEHOLDS[-1]]
    fresh = np.eye(1, encoder.embedding_size, dtype=np.float32)

    def after_a_change() -> None:
        """An enrolment (straight to the store, one sample) and the identify after it, which
        reloads every member: what the first identify after any change costs, plus the write."""
        changed.store.add_samples("member-0000", encoder.name, fresh, replace=True)
        changed.identify(probe)

    one = lambda: encoder.embed(inputs[0])  # noqa: E731
    two = lambda: (encoder.embed(inputs[0]), encoder.embed(inputs[1]))  # noqa: E731
    paths: list[tuple[str, str, Callable[[], object]]] = [
        ("verify, default", "two passes", lambda: default.verify(*files)),
        ("verify, no description", "two passes", lambda: plain.verify(*files)),
        ("verify, no description, one core", "two passes", lambda: sequential.verify(*files)),
        ("analyze 4 s", "one pass", lambda: default.analysis.analyze_file(pair[0], "a.wav")),
        *((f"identify, {n} members", "one pass", lambda h=h: h.identify(probe))
          for n, h in houses.items()),
        ("enrol one sample + identify, 1000 members", "one pass", after_a_change),
    ]
    floors = {"one pass": one, "two passes": two}
    for _, _, call in paths:  # warm-up: sessions, caches, the members loaded
        call()
    ratios: dict[str, list[float]] = {name: [] for name, _, _ in paths}
    timings: dict[str, list[float]] = {name: [] for name in [*floors, *ratios]}
    for _ in range(runs):
        for name, floor_name, call in paths:
            # The floor right before each path: a machine whose load drifts slows both alike.
            floor = timed(floors[floor_name])
            took = timed(call)
            timings[floor_name].append(floor)
            timings[name].append(took)
            ratios[name].append(took / floor)
    print(f"\nin process, encoder {encoder.name}, cores {settings.cores}, {runs} runs; each "
          "path timed right after its floor, ratio = median of the per-run ratios")
    print("| path | median | ratio to the floor | floor |")
    print("|---|---|---|---|")
    for name in floors:
        print(f"| {name} (the floor) | {statistics.median(timings[name]):.1f} ms | 1.00 | - |")
    for name, floor_name, _ in paths:
        print(f"| {name} | {statistics.median(timings[name]):.1f} ms | "
              f"{statistics.median(ratios[name]):.2f} | {floor_name} |")
    for service in houses.values():
        service.close()


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used (/proc/<pid>/stat), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def over_http(encoder_name: str, pair: list[bytes], seconds: float, folder: Path) -> None:
    process, url, ready_s = start_server(encoder_name, True, VOICEGATE_DATA_DIR=str(folder))
    try:
        ready = memory_kb(process.pid)
        print(f"\nover HTTP (waitress, defaults), server pid {process.pid}: ready in "
              f"{ready_s:.2f} s (spawn until /health answers), VmRSS at ready "
              f"{ready['VmRSS'] / 1024:.0f} MB")
        warm = Tally()
        http_client(url, pair, time.monotonic() + 60, 3, warm)
        if len(warm.latencies_ms) != 3:
            raise SystemExit(f"warm-up failed: {dict(warm.errors)}")
        print("| clients | pairs served | pairs/s | ratio to 1 client | 503 busy | p50 | "
              "server's cores busy |")
        print("|---|---|---|---|---|---|---|")
        single = None
        for clients in CLIENTS:
            tally = Tally()
            stop_at = time.monotonic() + seconds
            threads = [threading.Thread(target=http_client, daemon=True,
                                        args=(url, pair, stop_at, 100_000, tally))
                       for _ in range(clients)]
            started, cpu = time.monotonic(), cpu_seconds(process.pid)
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            elapsed = time.monotonic() - started
            busy_cores = (cpu_seconds(process.pid) - cpu) / elapsed
            served = len(tally.latencies_ms)
            rate = served / elapsed
            single = single or rate
            busy = sum(n for kind, n in tally.errors.items() if "503" in kind)
            others = sum(tally.errors.values()) - busy
            if others:
                print(f"  errors other than busy: {dict(tally.errors)}")
            p50 = statistics.median(tally.latencies_ms) if served else float("nan")
            print(f"| {clients} | {served} | {rate:.2f} | {rate / single:.2f} | {busy} | "
                  f"{p50:.0f} ms | {busy_cores:.2f} |")
        after = memory_kb(process.pid)
        print(f"server VmRSS after the load {after['VmRSS'] / 1024:.0f} MB, "
              f"peak (VmHWM) {after['VmHWM'] / 1024:.0f} MB")
    finally:
        process.terminate()
        process.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--seconds", type=float, default=20.0, help="per client count")
    parser.add_argument("--encoder", default="campplus")
    parser.add_argument("--skip-http", action="store_true")
    args = parser.parse_args()
    pair = [four_second_wav(p) for p in CLIPS]
    print(f"machine: {os.cpu_count()} cores, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} at the start")
    with tempfile.TemporaryDirectory(prefix="voicegate-perf-") as folder:
        in_process(args.encoder, pair, args.runs, Path(folder) / "in_process")
        if not args.skip_http:
            over_http(args.encoder, pair, args.seconds, Path(folder) / "http")


if __name__ == "__main__":
    main()
