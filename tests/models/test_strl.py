"""The STRL fine-tuning network: shapes, gradients, pre-trained encoder, shared person weights."""

import pytest
import torch
import torch.nn.functional as F

from skelmae.config import FinetuneConfig, PretrainConfig, chosen, load_config
from skelmae.data.layouts import get_layout
from skelmae.errors import ConfigError
from skelmae.models.build import build_classifier, build_method, encoder_state, load_encoder_weights
from skelmae.models.common import InputSpec
from skelmae.models.graph_mae import GINConfig, GraphEncoder, GraphMAE
from skelmae.models.st_mae import SkeletonMAE
from skelmae.models.strl import MultiScaleTemporalConv, STRLConfig, STRLNet

CHANNELS = {"ntu25": ["x", "y", "z"], "kinect20": ["x", "y", "z"], "coco17": ["x", "y", "score"]}
GIN = {"name": "gin", "config": {"feat_dim": 16, "hidden_dim": 24}}
STRL = {"name": "strl", "config": {}}


def _net(layers=3, layout="ntu25", frames=12, **kw):
    torch.manual_seed(0)
    encoder = GraphEncoder(InputSpec.of(layout, CHANNELS[layout], frames), GINConfig(feat_dim=16, hidden_dim=24))
    return STRLNet(encoder, 5, STRLConfig(layers=layers, **kw))


@pytest.mark.parametrize("layout", ["ntu25", "coco17", "kinect20"])
def test_forward_backward_reaches_every_parameter(layout):
    net = _net(layout=layout)
    v = get_layout(layout).num_joints
    x = torch.randn(3, 3, 12, v, 2)
    logits = net(x)
    assert logits.shape == (3, 5) and net.features(x).shape == (3, 16)
    F.cross_entropy(logits, torch.tensor([0, 1, 2]), label_smoothing=0.1).backward()
    assert not [n for n, p in net.named_parameters() if p.grad is None]  # DDP needs every parameter used
    assert all(p.grad.abs().sum() > 0 for p in net.encoder.parameters())


def test_persons_share_weights():
    net = _net().eval()
    x = torch.randn(2, 3, 12, 25, 2)
    swapped = x.flip(-1)
    with torch.no_grad():
        assert torch.allclose(net(x), net(swapped), atol=1e-5)
        one_person = net.features(x[..., :1])
        both_alike = net.features(torch.cat([x[..., :1], x[..., :1]], dim=-1))
    assert torch.allclose(one_person, both_alike, atol=1e-5)  # one set of weights for any number of persons


def test_one_encoder_serves_every_layer():
    net = _net(layers=3)
    calls = []
    net.encoder.layers[0].register_forward_hook(lambda m, i, o: calls.append(o.shape))
    net(torch.randn(2, 3, 12, 25, 2))
    assert len(calls) == 3  # the spatial module of each layer runs the same encoder
    assert len(net.layers) == 3 and not any(isinstance(m, GraphEncoder) for m in net.layers.modules())


def test_spatial_module_joins_each_joint_with_the_frame_sum_of_the_encoder():
    net = _net(layers=1).eval()
    joined = []
    net.layers[0].mix.register_forward_hook(lambda m, i, o: joined.append(i[0]))
    h = torch.randn(2, 16, 12, 25)
    with torch.no_grad():
        net.layers[0](h, net.encoder)
        per_joint = net.encoder.propagate(h.permute(0, 2, 3, 1))  # (B, T, V, D_h)
    own, pooled = joined[0][:, :16], joined[0][:, 16:]
    assert torch.equal(own, h)
    assert torch.allclose(pooled, per_joint.sum(dim=2).permute(0, 2, 1)[..., None].expand(-1, -1, -1, 25), atol=1e-5)


def test_pretrained_encoder_is_loaded_and_fine_tuned():
    spec = InputSpec.of("coco17", CHANNELS["coco17"], 12)
    mae = build_method({"name": "graph_mae", "config": {}}, GIN, spec)
    assert isinstance(mae, GraphMAE) and mae.coord_channels == 2  # (x, y, score): the score is no target
    with torch.no_grad():
        for p in mae.encoder.parameters():
            p.add_(torch.randn_like(p))
    net = build_classifier(GIN, STRL, spec, 5)  # the same backbone description as the pre-trained model
    assert isinstance(net, STRLNet) and isinstance(net.encoder, GraphEncoder)
    scratch = net(torch.randn(2, 3, 12, 17, 2)).detach()
    load_encoder_weights(net.encoder, encoder_state(mae.state_dict(), "mae"), "mae")
    assert all(torch.equal(a, b) for a, b in zip(net.encoder.state_dict().values(), mae.encoder.state_dict().values()))
    x = torch.randn(2, 3, 12, 17, 2)
    assert not torch.allclose(net(x), scratch)
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    before = net.encoder.lift.weight.detach().clone()
    y = torch.tensor([1, 3])
    first = F.cross_entropy(net(x), y).item()
    for _ in range(15):
        loss = F.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < first and not torch.equal(net.encoder.lift.weight, before)


def test_temporal_positions_follow_the_clip_length():
    net = _net(frames=12).eval()
    assert net.positions(12) is net.temporal_pos
    assert net.positions(20).shape == (1, 20, 1, 16)
    assert net(torch.randn(2, 3, 20, 25, 1)).shape == (2, 5)


def test_multiscale_temporal_conv_keeps_shape_and_mixes_frames():
    conv = MultiScaleTemporalConv(16).eval()
    h = torch.randn(1, 16, 20, 5)
    out = conv(h)
    assert out.shape == h.shape
    changed = h.clone()
    changed[:, :, 10] += 1.0
    moved = (conv(changed) - out).abs().amax(dim=(0, 1, 3)) > 0
    # offsets reached: dilation 1 -> 0..2, dilation 2 -> 0, 2, 4, max-pool -> 0..1
    assert torch.nonzero(moved).flatten().tolist() == [6, 8, 9, 10, 11, 12, 14]
    with pytest.raises(ValueError, match="divisible"):
        MultiScaleTemporalConv(18)


def test_finetune_preset_builds_strl():
    cfg = load_config(FinetuneConfig, "graph/finetune")
    assert cfg.head.name == "strl" and cfg.model.arch == "gin"
    assert (cfg.optim.name, cfg.optim.lr, cfg.optim.momentum, cfg.optim.warmup_epochs) == ("sgd", 0.1, 0.9, 5)
    assert (cfg.optim.schedule, cfg.optim.milestones, cfg.train.epochs) == ("step", [90, 100], 110)
    assert (cfg.label_smoothing, cfg.data.batch_size, cfg.data.window) == (0.1, 128, 64)
    assert chosen(cfg.head) == {"name": "strl", "config": {"layers": 3, "dropout": 0.3}}
    assert chosen(cfg.model)["name"] == "gin"
    spec = InputSpec.of("coco17", CHANNELS["coco17"], cfg.data.window)
    net = build_classifier(chosen(cfg.model), chosen(cfg.head), spec, 7)
    assert isinstance(net, STRLNet) and len(net.layers) == 3 and net.head[2].p == 0.3
    assert net(torch.randn(2, 3, 64, 17, 2)).shape == (2, 7)


def test_strl_needs_a_graph_encoder():
    transformer = chosen(load_config(FinetuneConfig).model)
    assert transformer["name"] == "transformer"
    spec = InputSpec.of("ntu25", CHANNELS["ntu25"], 16)
    with pytest.raises(ConfigError, match="model.arch=gin"):
        build_classifier(transformer, STRL, spec, 5)
    method = chosen(load_config(PretrainConfig).method)
    assert isinstance(build_method(method, transformer, spec), SkeletonMAE)
