"""benchmarks/results_table.py: mean ± std over seeds, and the best test epoch only as its own column."""

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "results_table.py"


@pytest.fixture(scope="module")
def results_table():
    spec = importlib.util.spec_from_file_location("results_table", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_run(root: Path, experiment: str, seed: int, last: float, best_val: float, best_test: float | None = None):
    record = {"epochs": 10, "seconds": 60.0, "test": {"top1": last}, "best_on_val": {"epoch": 3, "test": {"top1": best_val}}}
    if best_test is not None:
        record["best_test_epoch"] = {"epoch": 7, "test": {"top1": best_test}}
    run = root / experiment / f"seed{seed}"
    run.mkdir(parents=True)
    (run / "summary.json").write_text(json.dumps(record))


def test_rows_are_means_over_seeds_without_a_best_test_column_unless_a_run_reports_it(results_table, tmp_path, capsys):
    write_run(tmp_path, "probe", 0, 80.0, 78.0)
    write_run(tmp_path, "probe", 1, 82.0, 76.0)
    results_table.main(tmp_path)
    header, _, row = capsys.readouterr().out.splitlines()
    assert "best test epoch" not in header
    assert row == "| probe | 2 | 81.0 ± 1.4 | 77.0 ± 1.4 | 1.0 | 6.0 |"

    write_run(tmp_path, "probe_best_test", 0, 80.0, 78.0, 83.0)
    results_table.main(tmp_path)
    header, _, plain, picked = capsys.readouterr().out.splitlines()
    assert "best test epoch (comparison only)" in header
    assert plain == "| probe | 2 | 81.0 ± 1.4 | 77.0 ± 1.4 | - | 1.0 | 6.0 |"
    assert picked == "| probe_best_test | 1 | 80.0 ± 0.0 | 78.0 ± 0.0 | 83.0 ± 0.0 | 1.0 | 6.0 |"
