"""init=raw: the clip itself as the feature, the baseline of every results table."""

import pytest
import torch

from skelmae.config import FinetuneConfig, KnnConfig, LinearConfig, load_config
from skelmae.data.layouts import get_layout
from skelmae.data.storage import SkeletonStore
from skelmae.engine.checkpoint import load_checkpoint
from skelmae.errors import ConfigError
from skelmae.models.common import InputSpec
from skelmae.models.raw import RawClip
from skelmae.protocols.finetune import run_finetune
from skelmae.protocols.knn import run_knn
from skelmae.protocols.linear import run_linear


def test_each_person_becomes_one_flat_vector():
    encoder = RawClip(InputSpec(get_layout("ntu25"), ("x", "y", "z"), 8))
    x = torch.randn(4, 3, 8, 25, 2)
    out = encoder(x)
    assert out.shape == (4, 2, 1, 1, 3 * 8 * 25) and encoder.dim == 600
    assert torch.equal(out[1, 0, 0, 0], x[1, :, :, :, 0].reshape(-1))  # channel-major, then time, then joint
    assert torch.allclose(encoder.pooled(x), x.mean(dim=4).reshape(4, -1))  # persons averaged
    assert not list(encoder.parameters())
    with pytest.raises(ValueError, match="8-frame clips, got 9 frames"):
        encoder(torch.randn(1, 3, 9, 25, 1))


def test_linear_probe_on_raw_features_learns(tiny_synth, tiny, tmp_path):
    cfg = load_config(LinearConfig, None, tiny.data + [
        f"data.root={tiny_synth}", "init=raw", f"train.output_dir={tmp_path / 'raw'}", "train.epochs=20", "augment=false",
    ])
    summary = run_linear(cfg)
    store = SkeletonStore(tiny_synth)
    chance = 1 / store.num_classes
    assert summary["init"] == "raw" and summary["test"]["top1"] > 2 * chance  # the synthetic actions are separable
    ckpt = load_checkpoint(tmp_path / "raw" / "last.pt", kind="classifier")
    assert ckpt["backbone"] == {"name": "raw", "config": {}}
    assert ckpt["model"]["head.fc.weight"].shape == (store.num_classes, 3 * 16 * 25)


def test_knn_on_raw_features(tiny_synth, tiny, tmp_path):
    result = run_knn(load_config(KnnConfig, None, tiny.data + [f"data.root={tiny_synth}", "init=raw",
                                                                f"train.output_dir={tmp_path / 'knn'}", "k=[1]"]))
    assert result["init"] == "raw" and 0 <= result["top1"]["k1"] <= 100


def test_finetune_refuses_raw(tiny_synth, tiny, tmp_path):
    cfg = load_config(FinetuneConfig, None, tiny.training + [f"data.root={tiny_synth}", "init=raw",
                                                             f"train.output_dir={tmp_path / 'ft'}"])
    with pytest.raises(ConfigError, match="init=raw has no encoder to fine-tune"):
        run_finetune(cfg)

