"""Latency of one verification of two 4 s clips, in-process and over HTTP, and start-up time.

    python bench/verify.py [--runs 50] [--encoder ge2e]

Each is measured twice: verification alone, and with each file's gender and arousal added
(``VOICEGATE_DESCRIBE_FILES``, on by default).

Start-up is measured on a real ``python -m analytic serve`` process, from spawn until
``/health`` answers; HTTP latency is measured against that same process over loopback.
The clips are the first 4 s of two LibriSpeech recordings of speaker 2609 (tests/data).
"""

from __future__ import annotations

import argparse
import io
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import requests
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analytic.cli.settings import Settings  # noqa: E402
from analytic.encoders import load_encoder  # noqa: E402
from analytic.service import VerificationService  # noqa: E402

CLIPS = [ROOT / "tests/data/librispeech/2609-156975-0000.flac",
         ROOT / "tests/data/librispeech/2609-156975-0001.flac"]
CLIP_SECONDS = 4.0


def four_second_wav(path: Path) -> bytes:
    samples, rate = sf.read(path, dtype="float32")
    buffer = io.BytesIO()
    sf.write(buffer, samples[: int(CLIP_SECONDS * rate)], rate, format="WAV")
    return buffer.getvalue()


def percentiles(samples_ms: list[float]) -> str:
    ordered = sorted(samples_ms)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"p50 {statistics.median(ordered):6.1f} ms   p95 {p95:6.1f} ms   (n={len(ordered)})"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(encoder: str, describe: bool,
                 **extra_env: str) -> tuple[subprocess.Popen, str, float]:
    """``python -m analytic serve`` (no bus) on a free port; ``extra_env``: more VOICEGATE_*."""
    port = free_port()
    env = {**os.environ, "VOICEGATE_ENCODER": encoder, "VOICEGATE_MQTT_ENABLED": "false",
           "VOICEGATE_DESCRIBE_FILES": str(describe).lower(), **extra_env}
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "analytic", "serve", "--port", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    while time.perf_counter() - started < 120:
        try:
            if requests.get(url + "/health", timeout=1).status_code == 200:
                return process, url, time.perf_counter() - started
        except requests.ConnectionError:
            time.sleep(0.05)
    process.kill()
    raise SystemExit("the server did not become ready within 120 s")


def in_process(encoder: str, describe: bool, pair: list[bytes], runs: int) -> None:
    settings = Settings(encoder=encoder, describe_files=describe)
    started = time.perf_counter()
    service = VerificationService(settings, load_encoder(settings))
    print(f"  model load in-process: {time.perf_counter() - started:.2f} s")
    service.verify(("a.wav", pair[0]), ("b.wav", pair[1]))
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        service.verify(("a.wav", pair[0]), ("b.wav", pair[1]))
        timings.append(1000 * (time.perf_counter() - started))
    print(f"  in-process verify:     {percentiles(timings)}")


def over_http(encoder: str, describe: bool, pair: list[bytes], runs: int) -> None:
    process, url, ready_s = start_server(encoder, describe)
    try:
        print(f"  start-up to ready:     {ready_s:.2f} s (spawn until /health answers)")
        session = requests.Session()
        files = {"file1": ("a.wav", pair[0]), "file2": ("b.wav", pair[1])}
        session.post(url + "/speaker_verification", files=files, timeout=30).raise_for_status()
        timings = []
        for _ in range(runs):
            started = time.perf_counter()
            response = session.post(url + "/speaker_verification", files=files, timeout=30)
            timings.append(1000 * (time.perf_counter() - started))
            response.raise_for_status()
        print(f"  HTTP verify:           {percentiles(timings)}")
    finally:
        process.terminate()
        process.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--encoder", default="ge2e")
    args = parser.parse_args()
    pair = [four_second_wav(p) for p in CLIPS]
    print(f"encoder {args.encoder}, two {CLIP_SECONDS:.0f} s clips, {args.runs} runs each")
    for describe in (False, True):
        extra = "with" if describe else "without"
        print(f"{extra} per-file gender and arousal (VOICEGATE_DESCRIBE_FILES={describe})")
        in_process(args.encoder, describe, pair, args.runs)
        over_http(args.encoder, describe, pair, args.runs)


if __name__ == "__main__":
    main()
