"""bf16 autocast and torch.compile as options of every training command."""

import math

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
