"""CAM++ on torch against ONNX Runtime: the forward pass of one 4 s clip, one thread each.

    python bench/campplus_runtime.py [--runs 30]

Both run in the same process, interleaved, so the ratio holds on a busy machine even when the
absolute times do not. Prints each runtime's median and the ratio onnxruntime / torch, and the
cosine between their embeddings (the service refuses an export below 0.9999).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

CLIP = Path(__file__).resolve().parent.parent / "tests/data/librispeech/2609-156975-0000.flac"


def main() -> int:
    import soundfile as sf
    import torch

    from analytic.encoders.campplus import CamPlusPlusEncoder, fbank

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    torch.set_num_threads(1)
    samples, _ = sf.read(CLIP, dtype="float32")
    feats = fbank(samples[: 4 * 16_000])
    on_torch = CamPlusPlusEncoder()
    with tempfile.TemporaryDirectory() as folder:
        on_onnx = CamPlusPlusEncoder(onnx_dir=Path(folder))
        assert on_onnx.runtime == "onnxruntime", "the ONNX export failed (see the warning)"
        times: dict[str, list[float]] = {"torch": [], "onnxruntime": []}
        for _ in range(args.runs):
            for name, encoder in (("torch", on_torch), ("onnxruntime", on_onnx)):
                start = time.perf_counter()
                encoder.forward(feats)
                times[name].append(time.perf_counter() - start)
        a, b = on_torch.forward(feats), on_onnx.forward(feats)
    medians = {name: float(np.median(t)) for name, t in times.items()}
    for name, median in medians.items():
        print(f"{name}: {1000 * median:.1f} ms (median of {args.runs}, 4 s clip, one thread)")
    print(f"ratio onnxruntime / torch: {medians['onnxruntime'] / medians['torch']:.2f}")
    print(f"cosine between the two embeddings: "
          f"{float(a @ b / np.linalg.norm(a) / np.linalg.norm(b)):.6f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
