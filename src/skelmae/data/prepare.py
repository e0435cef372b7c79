"""``skelmae data prepare``: raw dataset -> canonical dataset folder, in parallel and crash-safe.

A registered dataset format (:data:`skelmae.data.formats.FORMATS`) describes its input as
an :class:`ImportPlan`: dataset facts (layout, channels, persons, classes, split names,
provenance) plus a list of work items (usually files) and a picklable ``load`` function
turning one item into samples. :func:`run_import` maps ``load`` over the items in worker
processes and writes every sample through :class:`DatasetWriter`. Results come back in
item order, so the dataset is identical for any number of workers.

Failure handling:

- ``on_error="fail"`` (default): the first :class:`DataFormatError` stops the run; nothing
  is written (the writer works in a hidden temporary folder that is removed).
- ``on_error="skip"``: bad items are left out, the rest is imported, and the errors are
  listed in ``<out>.skipped.txt`` beside the dataset and in the manifest's ``source``.
- A killed run leaves at most a hidden ``.<name>.partial-*`` folder, never a folder that
  looks complete (it has no ``manifest.json``); the next ``prepare`` of the same ``out``
  removes it, and puts back a complete copy if a replacement was interrupted
  (:func:`skelmae.data.storage.recover`).
- Every sample is checked in the worker that loaded it (shape, finite values in the stored
  dtype, label, name, fields: :func:`~skelmae.data.storage.sample_problem`), so a bad sample
  is a bad item like any other: skipped under ``skip``, and the writer never sees it.

Single-file formats whose data are already in memory once decoded (PYSKL pickles,
CTR-GCN ``.npz``) convert in the main process: shipping decoded arrays to workers would
only copy them.
"""

from __future__ import annotations

import contextlib
import functools
import multiprocessing
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from skelmae.atomic import write_text_atomic
from skelmae.data.formats import build_format, preparable_formats
from skelmae.data.formats.base import FormatOptionError, ImportPlan, Loaded, Sample, options_to_json
from skelmae.data.layouts import get_layout
from skelmae.data.storage import DatasetWriter, recover, sample_problem
from skelmae.errors import DataFormatError, SkelmaeError

__all__ = ["Sample", "Loaded", "ImportPlan", "ImportReport", "run_import", "prepare", "ON_ERROR", "report_path"]

ON_ERROR = ("fail", "skip")


@dataclass
class ImportReport:
    out: Path
    samples: int
    items: int
    skipped: list[str]  # error messages of the items left out
    dropped: list[str]
    notes: list[str]
    seconds: float
    report: Path | None
    split_counts: dict[str, int]

    @property
    def items_per_second(self) -> float:
        return self.items / self.seconds if self.seconds > 0 else float("inf")


def report_path(out: str | Path) -> Path:
    out = Path(out)
    return out.parent / f"{out.name}.skipped.txt"


@dataclass(frozen=True)
class _SampleCheck:
    """What every sample of a plan must fit (picklable, sent to the workers)."""

    raw: str
    shape: tuple[int, int, int]
    num_classes: int

    def __call__(self, loaded: Loaded) -> None:
        for sample in loaded.samples:
            problem = sample_problem(sample.sequence, sample.label, sample.name, sample.meta, self.shape, self.num_classes)
            if problem:
                raise DataFormatError(self.raw, f"sample {sample.name!r}", problem)


def _guarded(load: Callable[[Any], Loaded], check: _SampleCheck, item: Any) -> tuple[bool, Any]:
    """Run ``load`` and the sample checks in a worker; a format error travels back as plain
    fields (always picklable)."""
    try:
        loaded = load(item)
        check(loaded)
        return True, loaded
    except DataFormatError as exc:
        return False, (exc.path, exc.where, exc.problem, exc.expected)


def _results(plan: ImportPlan, workers: int) -> Iterator[tuple[bool, Any]]:
    layout = get_layout(plan.layout)
    check = _SampleCheck(plan.raw, (plan.num_persons, layout.num_joints, len(plan.channels)), len(plan.classes))
    guarded = functools.partial(_guarded, plan.load, check)
    if workers <= 1 or not plan.parallel:
        yield from map(guarded, plan.items)
        return
    chunk = max(1, min(32, (plan.total or 0) // (workers * 16)))
    # spawn: workers start clean, safe even when the caller runs threads (torch, OpenMP)
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        yield from pool.imap(guarded, plan.items, chunksize=chunk)


def run_import(
    plan: ImportPlan,
    out: str | Path,
    *,
    workers: int | None = None,
    on_error: str = "fail",
    overwrite: bool = False,
    progress: bool = True,
) -> ImportReport:
    """Import every item of ``plan`` into the dataset folder ``out``."""
    if on_error not in ON_ERROR:
        raise SkelmaeError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
    out = Path(out)
    workers = (os.cpu_count() or 1) if workers is None else int(workers)
    if plan.total is not None:
        workers = max(1, min(workers, plan.total))
    started = time.perf_counter()
    skipped: list[str] = []
    skipped_paths: list[str] = []
    dropped: list[str] = []
    members: dict[str, list[int]] = {name: [] for name in plan.split_names}
    items = 0
    with DatasetWriter(
        out, layout=plan.layout, channels=plan.channels, num_persons=plan.num_persons, classes=plan.classes,
        name=plan.name, source={"format": plan.format, **plan.source}, overwrite=overwrite,
        preprocessing=plan.preprocessing,
    ) as writer:
        bar = tqdm(total=plan.total, unit=plan.unit, desc=f"preparing {plan.name}", disable=not progress)
        with bar, contextlib.closing(_results(plan, workers)) as results:
            for ok, result in results:
                items += 1
                bar.update()
                if not ok:
                    error = DataFormatError(*result)
                    if on_error == "fail":
                        raise error
                    skipped.append(str(error))
                    skipped_paths.append(error.path)
                    bar.set_postfix(skipped=len(skipped))
                    continue
                dropped.extend(result.dropped)
                for sample in result.samples:
                    index = writer.add(sample.sequence, sample.label, sample.name, sample.meta)
                    for split in sample.splits:
                        members[split].append(index)
        if len(writer) == 0:
            raise DataFormatError(
                plan.raw, None, f"no samples were imported ({items} {plan.unit}s read, {len(skipped)} skipped)",
                f"{plan.format} input (see `skelmae data prepare --help`)",
            )
        for name, indices in members.items():
            writer.add_split(name, indices)
        writer.source.update(skipped=len(skipped), skipped_files=skipped_paths, dropped=len(dropped))
        samples = len(writer)
    report = _write_report(out, plan, skipped, dropped)
    return ImportReport(
        out=out, samples=samples, items=items, skipped=skipped, dropped=dropped, notes=plan.notes,
        seconds=time.perf_counter() - started, report=report,
        split_counts={name: len(indices) for name, indices in members.items()},
    )


def _write_report(out: Path, plan: ImportPlan, skipped: list[str], dropped: list[str]) -> Path | None:
    path = report_path(out)
    if not skipped and not dropped:
        path.unlink(missing_ok=True)  # a report of an earlier run would describe other data
        return None
    lines = [f"# skelmae data prepare {plan.format} --raw {plan.raw} --out {out}"]
    if skipped:
        lines += [f"# {len(skipped)} {plan.unit}(s) skipped because of errors:", *skipped]
    if dropped:
        lines += [f"# {len(dropped)} item(s) left out by the {plan.format} rules:", *dropped]
    return write_text_atomic(path, "\n".join(lines) + "\n")


def prepare(
    format: str,
    raw: str | Path | Sequence[str | Path],
    out: str | Path,
    *,
    workers: int | None = None,
    on_error: str = "fail",
    overwrite: bool = False,
    progress: bool = True,
    **options: Any,
) -> ImportReport:
    """Import ``raw`` (a path or several) of the registered ``format`` with its ``options``
    (see :mod:`skelmae.data.formats`) into the dataset folder ``out``.

    The manifest's ``source["options"]`` records every option of the format (defaults
    included), so that prediction reads new raw files exactly as this import read its own."""
    if format not in preparable_formats():
        raise FormatOptionError(f"unknown dataset format {format!r}; expected one of {preparable_formats()}")
    fmt = build_format(format, options)
    paths = [Path(raw)] if isinstance(raw, (str, Path)) else [Path(p) for p in raw]
    if not paths:
        raise SkelmaeError("no input given (--raw PATH)")
    for path in paths:
        if not path.exists():
            raise DataFormatError(path, None, "does not exist", f"the raw {format} data")
    recovered = recover(out)
    plan = fmt.plan(paths)
    plan.source["options"] = options_to_json(fmt.options)
    report = run_import(plan, out, workers=workers, on_error=on_error, overwrite=overwrite, progress=progress)
    report.notes[:0] = recovered
    return report
