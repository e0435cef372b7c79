"""FreqMixFormer: the DCT, the relative-joint transform, shapes on every layout, persons, the
config checks, and a short run on the synthetic set that learns and exports to ONNX."""

import json
import math

import numpy as np
import pytest
import torch

from skelmae.config import FinetuneConfig, load_config
from skelmae.data.layouts import available_layouts
from skelmae.engine.optim import classifier_param_groups
from skelmae.errors import ConfigError
from skelmae.export import export_classifier
from skelmae.models.build import build_backbone, build_classifier
from skelmae.models.common import InputSpec
from skelmae.models.freqmixformer import FreqMixFormer, FreqMixFormerConfig, MixedAttention, dct_matrix
from skelmae.protocols.finetune import run_finetune

TINY = {"channels": 10, "stages": [1, 1], "heads": 2, "groups": 2}  # widths 10, 20: 5 temporal branches of 2, 4
USER_LAYOUT = {  # a user's 5-joint layout: a trunk with two branches
    "name": "tiny_user", "joints": ["hip", "chest", "head", "left", "right"],
    "parents": [None, "hip", "chest", "chest", "chest"],
    "groups": {"trunk": ["hip", "chest", "head"], "arms": ["left", "right"]}, "left_right": [["left", "right"]],
}
LAYOUTS = [*available_layouts(), USER_LAYOUT]


def test_dct_matrix_is_the_orthonormal_dct_ii():
    n = 7
    basis = dct_matrix(n).double()
    torch.testing.assert_close(basis @ basis.T, torch.eye(n, dtype=torch.float64), atol=1e-6, rtol=0)
    x = torch.randn(n, dtype=torch.float64)
    by_definition = torch.tensor([
        math.sqrt((1 if k == 0 else 2) / n) * sum(x[i].item() * math.cos(math.pi * (2 * i + 1) * k / (2 * n)) for i in range(n))
        for k in range(n)
    ], dtype=torch.float64)
    torch.testing.assert_close(x @ basis.T, by_definition, atol=1e-6, rtol=0)
    torch.testing.assert_close((x @ basis.T) @ basis, x, atol=1e-6, rtol=0)  # its inverse is the transpose


@pytest.mark.parametrize("layout", LAYOUTS, ids=str)
@pytest.mark.parametrize("channels, persons", [(("x", "y", "z"), 2), (("x", "y", "score"), 1)])
def test_output_shape_on_any_layout_2d_and_3d(layout, channels, persons):
    spec = InputSpec.of(layout, channels, 9)
    encoder = FreqMixFormer(spec, FreqMixFormerConfig(**TINY))
    x = torch.randn(2, 3, 9, spec.num_joints, persons)
    assert encoder(x).shape == (2, persons, 5, spec.num_joints, 20)  # odd clip length: ceil(9 / 2) steps
    assert encoder.pooled(x).shape == (2, 20)


def test_three_stages_quarter_the_clip_and_default_is_the_published_network():
    spec = InputSpec.of("ntu25", ("x", "y", "z"), 15)
    encoder = FreqMixFormer(spec, FreqMixFormerConfig(channels=10, stages=[1, 1, 1], heads=2, groups=2))
    assert encoder(torch.randn(1, 3, 15, 25, 1)).shape == (1, 1, 4, 25, 40)  # ceil(15 / 4)
    published = FreqMixFormer(InputSpec.of("ntu25", ("x", "y", "z"), 64), FreqMixFormerConfig())
    assert published.dim == 320 and len(published.blocks) == 10 and len(published.trams) == 2
    assert [b.spatial.out_dim for b in published.blocks] == [80] * 4 + [160] * 3 + [320] * 3
    assert 2.0e6 < sum(p.numel() for p in published.parameters()) < 2.1e6


def test_mixed_attention_halves_its_own_map_and_quarters_the_neighbours():
    attention = MixedAttention(4)
    query, key = torch.rand(2, 3, 4), torch.rand(2, 3, 4)  # 3 heads
    own = attention.attend(attention.self_map, query, key)
    cross = attention.attend(attention.cross_map, key[:, :-1], query[:, 1:])
    mixed = attention(query, key)
    torch.testing.assert_close(mixed[:, 0], own[:, 0] / 2 + cross[:, 0] / 4)
    torch.testing.assert_close(mixed[:, 1], own[:, 1] / 2 + cross[:, 0] / 4 + cross[:, 1] / 4)
    torch.testing.assert_close(mixed[:, 2], own[:, 2] / 2 + cross[:, 1] / 4)
    scale = torch.tensor([0.5, 0.5, 1.5, 1.5])
    torch.testing.assert_close(attention(query, key, scale)[:, 0], own[:, 0] / 2 + cross[:, 0] * scale / 4)


@pytest.mark.parametrize("head", ["fc", "linear", "mlp"])
def test_trains_as_a_classifier_with_each_head_and_layer_decay(head):
    spec = InputSpec.of("kinect20", ("x", "y", "z"), 12)
    model = build_classifier({"name": "freqmixformer", "config": {**TINY, "drop_path": 0.1}},
                             {"name": head, "config": {}}, spec, 5)
    x, y = torch.randn(4, 3, 12, 20, 1), torch.tensor([0, 1, 2, 3])
    torch.nn.functional.cross_entropy(model(x), y).backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    scales = {g["lr_scale"] for g in classifier_param_groups(model, 5e-4, layer_decay=0.5)}
    assert len(scales) == model.encoder.num_layers + 1 == 4  # embedding, two blocks, the trams with the head


@pytest.mark.parametrize("config, message", [
    ({"channels": 12}, "channels=12 gives a stage of width 12, which must be a multiple of the 5 temporal branches"),
    ({"stages": []}, "stages must list at least one positive block count"),
    ({"temporal_kernel": 4}, "temporal_kernel must be odd"),
    ({"relative_hops": 0}, "relative_hops must be at least 1"),
    ({"low_fraction": 1.5}, r"low_fraction must be in \[0, 1\]"),
    ({"high_scale": -1.0}, "low_scale and high_scale must be non-negative"),
    ({"dilations": [0, 2]}, "dilations must list positive dilations"),
    ({"drop_path": 1.0}, r"drop_path must be in \[0, 1\)"),
])
def test_bad_config_values_are_refused_by_name(config, message):
    with pytest.raises(ConfigError, match=f"backbone 'freqmixformer': model.freqmixformer.{message}"):
        build_backbone({"name": "freqmixformer", "config": {**TINY, **config}}, InputSpec.of("ntu25", ("x", "y", "z"), 8))


@pytest.fixture(scope="module")
def trained(tiny_synth, tiny, tmp_path_factory):
    """20 epochs from scratch on the 14-class synthetic set, 15-frame windows (an odd clip
    length), evaluated once at the end."""
    out = tmp_path_factory.mktemp("freqmixformer") / "scratch"
    overrides = [*tiny.data, f"data.root={tiny_synth}", f"train.output_dir={out}", "data.window=15", "train.epochs=20",
                 "train.eval_every=20", "data.val_fraction=0", "model.arch=freqmixformer", "head.name=fc",
                 "label_smoothing=0", *(f"model.freqmixformer.{key}={json.dumps(value)}" for key, value in TINY.items()),
                 "optim.lr=1e-2", "optim.warmup_epochs=1", "optim.layer_decay=1.0"]
    return run_finetune(load_config(FinetuneConfig, "recipes/scratch", overrides), "scratch"), out


def test_a_short_run_learns(trained):
    summary, out = trained
    losses = [json.loads(line)["train/loss"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert np.mean(losses[-3:]) < 0.6 * np.mean(losses[:3])
    assert summary["test"]["top1"] >= 25  # 14 classes: chance is 7 % (seeds 0, 1, 2 reach 36, 46, 39 %)


def test_the_trained_classifier_exports_to_onnx(trained, tmp_path):
    """Export checks onnxruntime on a batch of another size than the one it exported: the DCT
    is a matrix product, the rounded-up pooling of the odd window exports, the batch stays dynamic."""
    pytest.importorskip("onnxruntime")
    summary, _ = trained
    assert export_classifier(summary["checkpoint"], tmp_path / "model.onnx", "onnx").max_abs_diff <= 1e-4
