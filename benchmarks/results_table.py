"""Mean ± std over seeds of every finished protocol run under a results folder.

    python benchmarks/results_table.py runs/nwucla

Reads ``<root>/<experiment>/seed<N>/summary.json`` and prints a Markdown table with the
last-epoch test top-1 and the test top-1 at the epoch best on validation, and the median
wall time of a run and of one of its epochs (medians, so that one run slowed by other work
does not skew them). Runs made with ``train.report_best_test=true`` add a column with the
best test epoch, labelled as such: it is only there to compare with papers that select
their epoch on the test split.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path


def mean_std(values: list[float]) -> str:
    if not values:
        return "-"
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.1f} ± {std:.1f}"


def collect(root: Path) -> dict[str, list[dict]]:
    runs: dict[str, list[dict]] = {}
    for summary in sorted(root.glob("**/seed*/summary.json")):
        experiment = summary.parent.parent.relative_to(root).as_posix()
        record = json.loads(summary.read_text())
        if "test" in record:
            runs.setdefault(experiment, []).append(record)
    return runs


def main(root: Path) -> None:
    runs = collect(root)
    best_test = any("best_test_epoch" in r for records in runs.values() for r in records)
    columns = ["experiment", "seeds", "test top-1, last epoch", "test top-1, best on val"]
    columns += ["test top-1, best test epoch (comparison only)"] * best_test + ["minutes per run", "seconds per epoch"]
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for experiment, records in runs.items():
        last = [r["test"]["top1"] for r in records]
        best = [r["best_on_val"]["test"]["top1"] for r in records if r.get("best_on_val")]
        picked = [mean_std([r["best_test_epoch"]["test"]["top1"] for r in records if "best_test_epoch" in r])] * best_test
        minutes = statistics.median(r["seconds"] for r in records) / 60
        per_epoch = statistics.median(r["seconds"] / max(r["epochs"], 1) for r in records)
        cells = [experiment, str(len(records)), mean_std(last), mean_std(best), *picked, f"{minutes:.1f}", f"{per_epoch:.1f}"]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "runs/nwucla"))
