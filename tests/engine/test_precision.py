"""bf16 autocast and torch.compile as options of every training command."""

import math

import pytest

from skelmae.config import FinetuneConfig, LinearConfig, PretrainConfig, load_config
from skelmae.engine.finetune import run_finetune
from skelmae.engine.linear import run_linear
from skelmae.engine.pretrain import run_pretrain

TINY = ["data.window=16", "data.min_crop=8", "data.batch_size=16", "data.num_workers=0", "model.dim=32",
        "model.depth=2", "model.heads=4", "train.progress=false", "train.epochs=1"]
DECODER = ["model.decoder_dim=16", "model.decoder_depth=1", "model.decoder_heads=2"]


def _run_all(tiny_synth, tmp_path, option):
    pre = run_pretrain(load_config(PretrainConfig, None, TINY + DECODER + [
        f"data.root={tiny_synth}", f"train.output_dir={tmp_path / 'pre'}", option]))
    lin = run_linear(load_config(LinearConfig, None, TINY + [
        f"data.root={tiny_synth}", f"init={pre['checkpoint']}", f"train.output_dir={tmp_path / 'lin'}", option]))
    ft = run_finetune(load_config(FinetuneConfig, None, TINY + [
        f"data.root={tiny_synth}", f"init={pre['checkpoint']}", f"train.output_dir={tmp_path / 'ft'}", option]))
    return pre, lin, ft


def test_bf16_autocast_runs_every_protocol(tiny_synth, tmp_path):
    pre, lin, ft = _run_all(tiny_synth, tmp_path, "train.bf16=true")
    assert math.isfinite(pre["final_loss"])
    assert 0 <= lin["test"]["top1"] <= 100 and 0 <= ft["test"]["top1"] <= 100


@pytest.mark.slow  # compiling on a CPU takes minutes; run with `scripts/test.sh -m slow`
def test_torch_compile_runs_every_protocol(tiny_synth, tmp_path):
    pre, lin, ft = _run_all(tiny_synth, tmp_path, "train.compile=true")
    assert math.isfinite(pre["final_loss"]) and 0 <= ft["test"]["top1"] <= 100
