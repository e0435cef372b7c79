"""Data-layer benchmarks: NTU preparation speed and memory while iterating an NTU120-size dataset.

    python benchmarks/bench_data.py prepare  [--ntu-raw DIR] [--files 2000] [--workers 1 2]
    python benchmarks/bench_data.py iterate  [--samples 113945] [--fractions 0.1 0.5 1.0] [--tmp /tmp]
    python benchmarks/bench_data.py all      (both, with the defaults)

``prepare`` times ``skelmae data prepare ntu60`` end to end (parse, denoise, centre, write)
on ``--files`` raw ``.skeleton`` files. With fewer real files than that (the test samples
in ``../shared/data``), the real files are hard-linked under further valid NTU names,
so every file is a genuine recording; their contents are in the page cache after the
first pass, so the figure is the CPU cost, not the disk's.

``iterate`` synthesises datasets of ``fraction x --samples`` sequences (NTU120 has
113,945) in ``--tmp``, with lengths drawn from N(80, 35) clipped to [32, 300] frames, and
reads each once in a fresh process through ``SkeletonDataset`` with the standard training
transform (random crop-resize to 120 frames + rotation) and a shuffled ``DataLoader``.
It reports the peak resident set size of that process: flat across fractions means
memory does not grow with the dataset. Each dataset is deleted after its measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from skelmae.bench import synthesise_ntu_like

REPO = Path(__file__).resolve().parents[1]


def _shared_ntu_raw() -> Path:
    shared = Path(os.environ.get("SKELMAE_SHARED_DATA", REPO.parent / "shared" / "data"))
    return shared / "ntu_rgbd_samples" / "raw_skeletons"


def _ntu_name(setup: int, camera: int, performer: int, replication: int, action: int) -> str:
    return f"S{setup:03d}C{camera:03d}P{performer:03d}R{replication:03d}A{action:03d}"


def _raw_folder(source: Path, files: int, dest: Path) -> int:
    """Fill ``dest`` with ``files`` .skeleton files: real ones, linked under further NTU names if too few."""
    from skelmae.data.formats import ntu

    originals = sorted(source.rglob("*.skeleton"))
    if not originals:
        raise SystemExit(f"no .skeleton files under {source}")
    missing = ntu.missing_skeletons("ntu60")
    if len(originals) >= files:
        names = [(path, path.stem) for path in originals[:files]]
    else:
        names, n = [], 0
        while len(names) < files:
            for path in originals:
                action = ntu.parse_name(path.stem)["action"]
                name = _ntu_name(1 + (n // 240) % 17, 1 + (n // 40) % 3, 1 + n % 40, 1 + (n // 120) % 2, action)
                if name not in missing and len(names) < files:
                    names.append((path, name))
            n += 1
    for path, name in names:
        try:
            os.link(path, dest / f"{name}.skeleton")
        except OSError:
            shutil.copyfile(path, dest / f"{name}.skeleton")
    return len(names)


def bench_prepare(ntu_raw: Path, files: int, workers: list[int], tmp: Path) -> list[dict]:
    from skelmae.data.formats import ntu
    from skelmae.data.prepare import prepare

    rows = []
    with tempfile.TemporaryDirectory(dir=tmp, prefix="skelmae-bench-") as work:
        raw = Path(work) / "raw"
        raw.mkdir()
        count = _raw_folder(ntu_raw, files, raw)
        paths = sorted(raw.glob("*.skeleton"))
        for path in paths:  # warm the page cache: measure parsing, not the disk
            path.read_bytes()
        started = time.perf_counter()
        for path in paths:
            ntu.load_sequence(path)
        seconds = time.perf_counter() - started
        rows.append({"what": "ntu.load_sequence, 1 process", "files": count, "seconds": round(seconds, 2),
                     "files_per_s": round(count / seconds, 1)})
        for n in workers:
            out = Path(work) / f"ntu60-{n}"
            report = prepare("ntu60", raw, out, workers=n, progress=False)
            rows.append({"what": f"data prepare ntu60, {n} worker(s)", "files": report.items,
                         "seconds": round(report.seconds, 2), "files_per_s": round(report.items_per_second, 1)})
            shutil.rmtree(out)
    return rows


def _iterate(root: str, batch: int) -> dict:
    """Runs in a fresh process: one shuffled pass with the training transform."""
    import torch

    from skelmae.data.dataset import SeededSampler, SkeletonDataset
    from skelmae.data.storage import SkeletonStore
    from skelmae.data.transforms import build_transforms

    torch.set_num_threads(1)
    store = SkeletonStore(root)
    dataset = SkeletonDataset(store, "train", build_transforms(store.layout, window=120, train=True))
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch, sampler=SeededSampler(len(dataset)), num_workers=0)
    started, seen = time.perf_counter(), 0
    for x, _ in loader:
        seen += x.shape[0]
    seconds = time.perf_counter() - started
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return {
        "samples": seen, "seconds": round(seconds, 1), "samples_per_s": round(seen / seconds),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "rss_anon_mb_at_end": round(int(status.get("RssAnon", "0 kB").split()[0]) / 1024),
        "rss_file_mb_at_end": round(int(status.get("RssFile", "0 kB").split()[0]) / 1024),
    }


def bench_iterate(samples: int, fractions: list[float], tmp: Path, batch: int) -> list[dict]:
    rows = []
    for fraction in fractions:
        n = int(round(samples * fraction))
        with tempfile.TemporaryDirectory(dir=tmp, prefix="skelmae-bench-") as work:
            out = Path(work) / "ds"
            started = time.perf_counter()
            gigabytes = synthesise_ntu_like(out, n)
            written = time.perf_counter() - started
            result = subprocess.run(
                [sys.executable, __file__, "_iterate", str(out), "--batch", str(batch)],
                capture_output=True, text=True, check=True,
            )
            row = {"fraction": fraction, "frames_gb": round(gigabytes, 2), "write_s": round(written, 1),
                   **json.loads(result.stdout.strip().splitlines()[-1])}
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def _table(rows: list[dict]) -> str:
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(str(row[k]) for k in keys) + " |" for row in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("prepare", "iterate", "all"):
        p = sub.add_parser(name)
        p.add_argument("--tmp", type=Path, default=Path(tempfile.gettempdir()), help="where temporary data go")
        p.add_argument("--json", type=Path, help="also write the results here")
        if name in ("prepare", "all"):
            p.add_argument("--ntu-raw", type=Path, default=_shared_ntu_raw())
            p.add_argument("--files", type=int, default=2000)
            p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
        if name in ("iterate", "all"):
            p.add_argument("--samples", type=int, default=113_945, help="100 %% size (NTU120: 113,945)")
            p.add_argument("--fractions", type=float, nargs="+", default=[0.1, 0.5, 1.0])
            p.add_argument("--batch", type=int, default=128)
    hidden = sub.add_parser("_iterate")
    hidden.add_argument("root")
    hidden.add_argument("--batch", type=int, default=128)
    args = parser.parse_args()
    if args.command == "_iterate":
        print(json.dumps(_iterate(args.root, args.batch)))
        return
    results = {}
    if args.command in ("prepare", "all"):
        results["prepare"] = bench_prepare(args.ntu_raw, args.files, args.workers, args.tmp)
        print(_table(results["prepare"]), flush=True)
    if args.command in ("iterate", "all"):
        results["iterate"] = bench_iterate(args.samples, args.fractions, args.tmp, args.batch)
        print(_table(results["iterate"]), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
