"""Rendering throughput of ``skelmae.viz.render``: frames per second, GIF and MP4.

Usage: python benchmarks/render_speed.py [--frames 120] [--panels 1 3]

Draws a synthetic two-person sequence (one panel as ``data show``, three as
``visualize``) and times drawing alone, then drawing + encoding to GIF and to MP4.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from skelmae.data.synthetic import SynthConfig, generate
from skelmae.viz.render import Panel, SequenceRenderer, save_rendering


def two_person_sequence(frames: int) -> np.ndarray:
    for seq, _, name, _ in generate(SynthConfig(subjects=4, test_subjects=2, repetitions=1, min_frames=frames, max_frames=frames)):
        if name.startswith("S000A012"):  # "shake hands": two persons
            return seq
    raise RuntimeError("no two-person sample")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--panels", type=int, nargs="+", default=[1, 3])
    args = parser.parse_args()
    seq = two_person_sequence(args.frames)
    mask = np.random.default_rng(0).random(seq.shape[:3]) < 0.9
    from skelmae.data.layouts import get_layout

    layout = get_layout("ntu25")
    print(f"{platform.processor() or platform.machine()}, {args.frames} frames of 2 persons")
    for n in args.panels:
        panels = [Panel("input", seq), Panel("masked", seq, greyed=mask), Panel("recon", seq, predicted=mask)][:n]
        renderer = SequenceRenderer(panels, layout, ["x", "y", "z"])
        started = time.perf_counter()
        for t in range(len(seq)):
            renderer.frame(t)
        draw = len(seq) / (time.perf_counter() - started)
        rates = {}
        with tempfile.TemporaryDirectory() as tmp:
            for suffix in (".gif", ".mp4"):
                started = time.perf_counter()
                save_rendering(renderer, Path(tmp) / f"clip{suffix}", sheet_frames=8, progress=False)
                rates[suffix] = len(seq) / (time.perf_counter() - started)
                size = (Path(tmp) / f"clip{suffix}").stat().st_size / 1e6
                rates[suffix + " MB"] = size
        h, w = renderer.frame(0).shape[:2]
        print(f"{n} panel(s) {w}x{h}: draw {draw:.1f} frames/s; with GIF {rates['.gif']:.1f} frames/s "
              f"({rates['.gif MB']:.2f} MB); with MP4 {rates['.mp4']:.1f} frames/s ({rates['.mp4 MB']:.2f} MB)")


if __name__ == "__main__":
    main()
