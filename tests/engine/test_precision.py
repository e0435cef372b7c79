"""bf16 autocast and torch.compile as options of every training command."""

import json
import math
from pathlib import Path

import pytest

from skelmae.config import FinetuneConfig, LinearConfig, PretrainConfig, load_config
from skelmae.protocols.finetune import run_finetune
from skelmae.protocols.linear import run_linear
from skelmae.protocols.pretrain import run_pretrain


def _run_all(tiny_synth, tiny, tmp_path, option):
    one = ["train.epochs=1"]
    pre = run_pretrain(load_config(PretrainConfig, None, tiny.pretrain + one + [
        f"data.root={tiny_synth}", f"train.output_dir={tmp_path / 'pre'}", option]))
    lin = run_linear(load_config(LinearConfig, None, tiny.training + one + [
        f"data.root={tiny_synth}", f"init={pre['checkpoint']}", f"train.output_dir={tmp_path / 'lin'}", option]))
    ft = run_finetune(load_config(FinetuneConfig, None, tiny.training + one + [
        f"data.root={tiny_synth}", f"init={pre['checkpoint']}", f"train.output_dir={tmp_path / 'ft'}", option]))
    return pre, lin, ft


def test_bf16_autocast_runs_every_protocol(tiny_synth, tiny, tmp_path):
    pre, lin, ft = _run_all(tiny_synth, tiny, tmp_path, "train.bf16=true")
    assert math.isfinite(pre["final_loss"])
    assert lin["test"]["samples"] == ft["test"]["samples"] == 28
    assert math.isfinite(lin["test"]["top1"]) and math.isfinite(ft["test"]["top1"])


@pytest.mark.slow  # compiling on a CPU takes minutes; run with `scripts/test.sh -m slow`
def test_torch_compile_runs_every_protocol(tiny_synth, tiny, tmp_path):
    pre, lin, ft = _run_all(tiny_synth, tiny, tmp_path, "train.compile=true")
    assert math.isfinite(pre["final_loss"]) and ft["test"]["samples"] == 28


def _loss_curve(run_dir) -> list[float]:
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r["train/loss"] for r in records if "train/loss" in r]


def test_bf16_matches_fp32_on_a_short_run_and_its_probe(tiny_synth, tiny, tmp_path):
    """The stated tolerance: every epoch's pre-training loss within 1 % of fp32's, and the
    linear probe on the result within 2 of the 28 test clips."""
    curves, top1 = {}, {}
    for bf16 in (False, True):
        pre = run_pretrain(load_config(PretrainConfig, None, tiny.pretrain + [
            "train.epochs=6", f"data.root={tiny_synth}", f"train.output_dir={tmp_path / f'pre{bf16}'}", f"train.bf16={bf16}"]))
        lin = run_linear(load_config(LinearConfig, None, tiny.training + [
            "train.epochs=10", f"data.root={tiny_synth}", f"init={pre['checkpoint']}",
            f"train.output_dir={tmp_path / f'lin{bf16}'}", f"train.bf16={bf16}"]))
        curves[bf16], top1[bf16] = _loss_curve(Path(pre["run_dir"])), lin["test"]["top1"]
    assert len(curves[True]) == len(curves[False]) == 6
    assert curves[True] != curves[False]  # autocast did run in bf16
    assert curves[False][-1] < 0.8 * curves[False][0]  # a curve that moves, not a flat line
    for fp32, bf16 in zip(curves[False], curves[True]):
        assert bf16 == pytest.approx(fp32, rel=0.01)
    assert abs(top1[True] - top1[False]) <= 2 * 100 / 28 + 1e-6
