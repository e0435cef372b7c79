"""Exported classifier vs PyTorch: largest logit difference and CPU latency.

Usage: python benchmarks/export_parity.py [--dim 256 --depth 8 --window 120] [--batch 8]

Builds a randomly initialised classifier of the given size (default: the MAMP encoder on
NTU, 25 joints x 2 persons, 30 x 25 tokens per person, linear head, 60 classes), saves it
as a checkpoint, exports it to ONNX and TorchScript with ``export_classifier`` and times a
batch in PyTorch, onnxruntime and the TorchScript module (median of 5 runs after a warm-up).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from skelmae.data.layouts import get_layout
from skelmae.engine.checkpoint import save_checkpoint
from skelmae.export import export_classifier
from skelmae.models.build import build_classifier
from skelmae.models.common import InputSpec


def median_seconds(fn, repeats: int = 5) -> float:
    fn()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--depth", type=int, default=8)
    parser.add_argument("--window", type=int, default=120)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    layout = get_layout("ntu25")
    spec = InputSpec.of(layout, ["x", "y", "z"], args.window)
    backbone = {"name": "transformer", "config": {"segment": 4, "dim": args.dim, "depth": args.depth, "heads": 8,
                                                  "mlp_ratio": 4.0, "drop_path": 0.0}}
    head = {"name": "linear", "config": {}}
    torch.manual_seed(0)
    model = build_classifier(backbone, head, spec, 60).eval()
    data = {"layout": layout.to_dict(), "channels": ["x", "y", "z"], "num_persons": 2,
            "classes": [f"A{i + 1:03d}" for i in range(60)], "window": args.window, "test_crop": 0.95,
            "min_crop": 64, "modality": "joint"}
    x = torch.randn(args.batch, 3, args.window, 25, 2, generator=torch.Generator().manual_seed(1))
    print(f"encoder dim {args.dim}, depth {args.depth}, window {args.window}; batch {args.batch}; "
          f"{torch.get_num_threads()} threads")
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = save_checkpoint(Path(tmp) / "random.pt", {
            "kind": "classifier", "input": spec.to_dict(), "backbone": backbone, "head": head, "num_classes": 60,
            "model": model.state_dict(), "data": data,
        })
        with torch.no_grad():
            expected = model(x).numpy()
            print(f"pytorch      {1000 * median_seconds(lambda: model(x)):8.1f} ms/batch")
        for fmt in ("onnx", "torchscript"):
            started = time.perf_counter()
            result = export_classifier(ckpt, None, fmt)
            seconds = time.perf_counter() - started
            if fmt == "onnx":
                import onnxruntime

                session = onnxruntime.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
                run = lambda: session.run(None, {"skeleton": x.numpy()})[0]  # noqa: E731
            else:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)
                    module = torch.jit.load(str(result.path))
                run = lambda: module(x).detach().numpy()  # noqa: E731
            diff = float(np.abs(run() - expected).max())
            with torch.no_grad():
                ms = 1000 * median_seconds(run)
            print(f"{fmt:12s} {ms:8.1f} ms/batch; export {seconds:.1f} s; check batch of 3: {result.max_abs_diff:.1e}, "
                  f"batch of {args.batch}: {diff:.1e}; {result.path.stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
