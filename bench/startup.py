"""Where start-up goes: a real ``python -m analytic serve`` from spawn until ``/health``
answers, its memory at ready, and which heavy libraries it loaded, against the floor of a bare
process that only loads what the model itself needs (numpy, ONNX Runtime, the CAM++ session).

    python bench/startup.py [--runs 3]

Printed: ready time and RSS per run (median), the floor and the ratio ready/floor, the
libraries mapped into the ready process (torch, GE2E's, librosa's numba), and the slowest
imports from ``-X importtime``. The ONNX export is made once before timing (a first start on a
fresh machine pays it once). Absolute times vary with the machine; the ratio much less.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from verify import start_server  # noqa: E402

FLOOR = (
    "from pathlib import Path; from analytic.settings import CoreSettings; "
    "from analytic.encoders.campplus import CamPlusPlusEncoder; "
    "CamPlusPlusEncoder(onnx_dir=Path(CoreSettings().model_cache_dir).expanduser())"
)
WATCHED = {"torch": "libtorch_cpu", "numba": "numba", "onnxruntime": "onnxruntime",
           "scipy": "scipy", "pocketsphinx": "pocketsphinx"}


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def mapped(pid: int) -> list[str]:
    maps = Path(f"/proc/{pid}/maps").read_text()
    return [name for name, needle in WATCHED.items() if needle in maps]


def floor_s() -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", FLOOR], cwd=ROOT, check=True)
    return time.perf_counter() - started


def slowest_imports(count: int = 8) -> list[tuple[float, str]]:
    """Top-level packages by cumulative import time while building the served app."""
    code = ("from analytic.cli.settings import load_settings; "
            "from analytic.cli.build import build_service; "
            "from analytic.web.app import create_app; "
            "create_app(build_service(load_settings(mqtt_enabled=False)))")
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", code], cwd=ROOT,
                          capture_output=True, text=True, check=True)
    cumulative: dict[str, float] = {}
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, micros, name = (part.strip() for part in line.split("|"))
        if micros.isdigit() and not name.startswith(" ") and "." not in name.strip():
            cumulative[name.strip()] = max(cumulative.get(name.strip(), 0), int(micros) / 1e6)
    return sorted(((s, n) for n, s in cumulative.items()), reverse=True)[:count]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data:
        os.environ.setdefault("VOICEGATE_DATA_DIR", data)
        floor_s()  # makes the ONNX export if this machine has none yet
        ready, memory, floors = [], [], []
        libraries: list[str] = []
        for _ in range(args.runs):  # interleaved, so load changes touch both alike
            floors.append(floor_s())
            process, _, seconds = start_server("campplus", describe=True)
            try:
                ready.append(seconds)
                memory.append(rss_mb(process.pid))
                libraries = mapped(process.pid)
            finally:
                process.terminate()
                process.wait(30)
    floor = statistics.median(floors)
    print(f"ready (spawn until /health answers): {statistics.median(ready):.2f} s median "
          f"of {args.runs}; floor (bare CAM++ on ONNX Runtime): {floor:.2f} s; "
          f"ratio {statistics.median(ready) / floor:.2f}")
    print(f"RSS at ready: {statistics.median(memory):.0f} MB")
    print(f"heavy libraries mapped at ready: {', '.join(libraries) or 'none'}")
    print("slowest top-level imports while building the app (cumulative):")
    for seconds, name in slowest_imports():
        print(f"  {seconds:6.2f} s  {name}")


if __name__ == "__main__":
    main()
