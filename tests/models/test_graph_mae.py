"""SkeletonMAE-G: graph operations, masking, the loss, and pre-training + probing end to end."""

import json

import numpy as np
import pytest
import torch

from skelmae.config import LinearConfig, PretrainConfig, chosen, load_config
from skelmae.data.layouts import get_layout
from skelmae.data.storage import DatasetWriter, SkeletonStore
from skelmae.engine.checkpoint import load_checkpoint
from skelmae.engine.common import method_from_checkpoint
from skelmae.engine.optim import classifier_param_groups
from skelmae.errors import ConfigError
from skelmae.models.build import build_classifier, build_method, encoder_state, load_encoder_weights
from skelmae.models.common import InputSpec, fold_persons
from skelmae.models.graph_mae import GINConfig, GINLayer, GraphEncoder, GraphMAE, GraphMAEConfig, scaled_cosine_error
from skelmae.models.strl import STRLNet
from skelmae.protocols.linear import run_linear
from skelmae.protocols.pretrain import run_pretrain

SMALL = GINConfig(feat_dim=16, hidden_dim=24)
XYZ = ("x", "y", "z")


def _mae(layout="ntu25", channels=XYZ, frames=8, **method):
    torch.manual_seed(0)
    spec = InputSpec.of(layout, channels, frames)
    return GraphMAE(GraphEncoder(spec, SMALL), spec, GraphMAEConfig(**method))


def _hops(layout_name: str) -> np.ndarray:
    """Graph distance between every pair of joints of a layout's bone tree."""
    adj = get_layout(layout_name).adjacency(self_loops=False) > 0
    v = adj.shape[0]
    dist = np.full((v, v), np.inf)
    for start in range(v):
        dist[start, start], frontier, d = 0, [start], 0
        while frontier:
            d += 1
            frontier = [u for w in frontier for u in np.flatnonzero(adj[w]) if dist[start, u] == np.inf]
            for u in frontier:
                dist[start, u] = d
    return dist


@pytest.mark.parametrize("last", [False, True])
def test_one_gin_layer_reaches_exactly_a_joint_and_its_neighbours(last):
    layout = get_layout("ntu25")
    torch.manual_seed(0)
    layer = GINLayer(8, 16, 8, last=last).eval()
    adjacency = torch.from_numpy(layout.adjacency())
    h = torch.randn(3, 25, 8)
    base = layer(h, adjacency)
    for joint in range(25):
        changed = h.clone()
        changed[:, joint] += torch.randn(8)
        moved = (layer(changed, adjacency) - base).abs().amax(dim=(0, 2)) > 0
        neighbours = {joint} | {c for c, p in layout.bones if p == joint} | {p for c, p in layout.bones if c == joint}
        assert set(torch.nonzero(moved).flatten().tolist()) == neighbours, layout.joint_names[joint]


def test_encoder_receptive_field_is_its_depth_in_hops_within_one_frame_graph():
    encoder = GraphEncoder(InputSpec.of("kinect20", XYZ, 4), GINConfig(feat_dim=8, hidden_dim=8, encoder_layers=3)).eval()
    hops = _hops("kinect20")
    x = torch.randn(2, 3, 4, 20, 2)
    base = encoder(x)
    for joint in (0, 7, 15):
        changed = x.clone()
        changed[1, :, 2, joint, 0] += 1.0  # sample 1, frame 2, person 0
        diff = (encoder(changed) - base).abs().amax(dim=-1)  # (N, M, T, V)
        assert diff[0].max() == 0 and diff[1, 1].max() == 0  # other samples and persons: untouched
        assert diff[1, 0, [0, 1, 3]].max() == 0  # other frames: untouched
        moved = set(torch.nonzero(diff[1, 0, 2] > 0).flatten().tolist())
        assert moved == set(np.flatnonzero(hops[joint] <= 3).tolist())


def test_bodypart_masks_whole_groups_drawn_per_frame():
    model = _mae(mask="bodypart", regions=2)
    mask = model.choose_mask(4, 50, torch.device("cpu"), torch.Generator().manual_seed(0))
    groups = get_layout("ntu25").groups
    per_group = torch.stack([mask[..., list(js)].float().mean(-1) for js in groups.values()], dim=-1)
    assert ((per_group == 0) | (per_group == 1)).all()  # a group is masked whole or not at all
    assert (per_group.sum(-1) == 2).all()
    assert len({tuple(m.tolist()) for m in mask.reshape(-1, 25)}) > 5  # frames draw their own regions
    fixed = _mae(fixed_regions=["right_arm", "right_leg"]).choose_mask(2, 3, torch.device("cpu"))
    expected = torch.zeros(25, dtype=torch.bool)
    expected[list(groups["right_arm"]) + list(groups["right_leg"])] = True
    assert (fixed == expected).all()


def test_random_joint_masking_masks_a_fixed_count():
    model = _mae(mask="random", ratio=0.5)
    mask = model.choose_mask(3, 10, torch.device("cpu"), torch.Generator().manual_seed(0))
    assert (mask.sum(-1) == round(0.5 * 25)).all()


def _masked_batch(model, in_channels=3, joints=25):
    seq = torch.randn(4, 8, joints, in_channels)
    mask = model.choose_mask(4, 8, seq.device, torch.Generator().manual_seed(3))
    return seq, mask


@pytest.mark.parametrize("remask", [False, True])
def test_masked_inputs_never_reach_the_encoder(remask):
    model = _mae(remask=remask).eval()
    seq, mask = _masked_batch(model)
    changed = seq.clone()
    changed[mask] = torch.randn_like(changed[mask]) * 100
    with torch.no_grad():
        assert torch.equal(model.forward_encoder(seq, mask), model.forward_encoder(changed, mask))
        changed = seq.clone()
        changed[~mask] += 1.0
        assert not torch.allclose(model.forward_encoder(seq, mask), model.forward_encoder(changed, mask))


@pytest.mark.parametrize("edge_weight", [0.0, 0.5])
def test_masked_inputs_reach_the_loss_only_as_targets(edge_weight):
    model = _mae(edge_weight=edge_weight)
    seq, mask = _masked_batch(model)
    seq.requires_grad_(True)

    def loss_with(targets_from: torch.Tensor) -> torch.Tensor:
        pred = model.forward_decoder(model.forward_encoder(seq, mask), mask)
        joints, bones = model.make_targets(targets_from)
        loss = scaled_cosine_error(pred[..., :3], joints, mask, 2.0)
        if edge_weight:
            loss = loss + edge_weight * scaled_cosine_error(pred[..., 3:], bones, mask | mask[..., model.parents], 2.0)
        return loss

    through_prediction = torch.autograd.grad(loss_with(seq.detach()), seq)[0]
    assert (through_prediction[mask] == 0).all() and (through_prediction[~mask] != 0).any()
    through_both = torch.autograd.grad(loss_with(seq), seq)[0]
    assert (through_both[mask] != 0).any()  # the target path


def test_scaled_cosine_error_definition_and_zero_targets():
    pred, target = torch.randn(5, 7, 3), torch.randn(5, 7, 3)
    mask = torch.rand(5, 7) > 0.4
    cos = torch.nn.functional.cosine_similarity(pred, target, dim=-1)
    expected = ((1 - cos) ** 2)[mask].mean()
    assert torch.allclose(scaled_cosine_error(pred, target, mask, 2.0), expected, atol=1e-6)
    assert torch.allclose(scaled_cosine_error(pred, target, mask, 1.0), (1 - cos)[mask].mean(), atol=1e-6)
    padded_target = torch.cat([target, torch.zeros(5, 7, 3)], dim=1)  # an absent person's joints
    padded_pred, padded_mask = torch.cat([pred, torch.randn(5, 7, 3)], 1), torch.cat([mask, mask], 1)
    padded = scaled_cosine_error(padded_pred, padded_target, padded_mask, 2.0)
    assert torch.allclose(padded, expected, atol=1e-6)
    assert scaled_cosine_error(target * 3.0, target, mask, 2.0) < 1e-6  # scale does not matter


def test_forward_loss_targets_and_masks():
    model = _mae(mask="bodypart", edge_weight=0.0)
    x = torch.randn(2, 3, 8, 25, 2)
    out = model(x, generator=torch.Generator().manual_seed(0))
    seq = fold_persons(x)
    assert out.pred.shape == out.target.shape == (4, 8 * 25, 3) and out.mask.shape == (4, 8 * 25)
    centre = get_layout("ntu25").center
    assert torch.allclose(out.target.reshape(4, 8, 25, 3), seq - seq[:, :, centre : centre + 1])
    assert torch.allclose(out.loss, scaled_cosine_error(out.pred, out.target, out.mask.bool(), 2.0))
    grad = torch.autograd.grad(out.loss, out.pred)[0]
    assert (grad[out.mask == 0] == 0).all() and (grad[out.mask == 1] != 0).any()


@pytest.mark.parametrize(
    "layout, channels, coords",
    [("ntu25", XYZ, 3), ("kinect20", XYZ, 3), ("coco17", ("x", "y", "score"), 2), ("coco17", ("x", "y"), 2)],
)
@pytest.mark.parametrize("edge_weight", [0.0, 1.0])
def test_shapes_in_2d_and_3d(layout, channels, coords, edge_weight):
    v = get_layout(layout).num_joints
    model = _mae(layout, channels, edge_weight=edge_weight)
    assert model.coord_channels == coords  # from the channel names: a 2D pose has no z
    x = torch.randn(3, len(channels), 8, v, 2)
    out = model(x)
    assert out.pred.shape == (6, 8 * v, coords) and torch.isfinite(out.loss)
    assert model.encoder(x).shape == (3, 2, 8, v, 24)
    out.loss.backward()
    unused = [n for n, p in model.named_parameters() if p.grad is None]
    assert not unused  # DDP needs every parameter in the graph


def test_score_channel_is_an_input_but_not_a_target():
    model = _mae("coco17", ("x", "y", "score")).eval()
    seq = torch.randn(2, 8, 17, 3)
    other = seq.clone()
    other[..., 2] = torch.rand(2, 8, 17)
    assert all(torch.equal(a, b) for a, b in zip(model.make_targets(seq), model.make_targets(other)))
    mask = torch.zeros(2, 8, 17, dtype=torch.bool)
    with torch.no_grad():
        assert not torch.allclose(model.forward_encoder(seq, mask), model.forward_encoder(other, mask))


def test_a_few_steps_lower_the_loss_on_synthetic_poses(tiny_synth):
    store = SkeletonStore(tiny_synth)
    clips = [store.sequence(i)[:16] for i in range(4)]
    x = torch.from_numpy(np.stack(clips)).permute(0, 4, 1, 3, 2).contiguous()  # (N, C, T, V, M)
    spec = InputSpec.of(store.layout, store.channels, 16)
    model = GraphMAE(GraphEncoder(spec, GINConfig(feat_dim=32, hidden_dim=32)), spec, GraphMAEConfig(edge_weight=0.5))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731 - the same masks every step
    first = model(x, generator=gen()).loss.item()
    for _ in range(30):
        loss = model(x, generator=gen()).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first


def test_invalid_configuration():
    with pytest.raises(ValueError, match="bodypart or random"):
        _mae(mask="motion")
    with pytest.raises(ValueError, match="not groups of layout"):
        _mae(fixed_regions=["tail"])
    with pytest.raises(ValueError, match="between 1 and 5"):
        _mae(regions=6)
    with pytest.raises(ValueError, match="decoder needs at least one"):
        _mae(decoder_layers=0)
    spec = InputSpec.of("ntu25", XYZ, 8)
    gin = {"name": "gin", "config": {}}
    # the coordinate channels follow from the channel names; the method has no such option
    with pytest.raises(ConfigError, match="unknown key"):
        build_method({"name": "graph_mae", "config": {"coord_channels": 4}}, gin, spec)
    with pytest.raises(ConfigError, match="between 1 and 5"):
        build_method({"name": "graph_mae", "config": {"regions": 6}}, gin, spec)
    with pytest.raises(ConfigError, match="at least one GIN layer"):
        build_method({"name": "graph_mae", "config": {}}, {"name": "gin", "config": {"encoder_layers": 0}}, spec)


def test_builders_dispatch_on_the_registered_names():
    cfg = load_config(PretrainConfig, "graph/pretrain", ["method.graph_mae.edge_weight=0.5"])
    recipe = (cfg.optim.name, cfg.optim.lr, cfg.data.batch_size, cfg.train.epochs, cfg.data.window)
    assert recipe == ("adam", 1.5e-4, 1024, 50, 64) and cfg.method.graph_mae.mask == "bodypart"
    backbone, method = chosen(cfg.model), chosen(cfg.method)
    assert backbone == {"name": "gin", "config": {"feat_dim": 64, "hidden_dim": 64, "encoder_layers": 3}}
    assert method["name"] == "graph_mae" and method["config"]["edge_weight"] == 0.5
    spec = InputSpec.of("coco17", ["x", "y", "score"], cfg.data.window)
    mae = build_method(method, backbone, spec)
    assert isinstance(mae, GraphMAE) and mae.edge_weight == 0.5
    assert mae.coord_channels == 2 and mae.encoder.lift.in_features == 3
    rebuilt = build_method(method, backbone, spec)
    rebuilt.load_state_dict(mae.state_dict())  # the description rebuilds the same model
    probe = build_classifier(backbone, {"name": "linear", "config": {}}, spec, 5)
    assert isinstance(probe.encoder, GraphEncoder)
    load_encoder_weights(probe.encoder, encoder_state(mae.state_dict(), "mae"), "mae")  # same description, same weights
    assert probe(torch.randn(2, 3, 64, 17, 2)).shape == (2, 5)
    mlp = build_classifier(backbone, {"name": "mlp", "config": {}}, spec, 5)
    assert mlp(torch.randn(2, 3, 64, 17, 2)).shape == (2, 5)
    with pytest.raises(ConfigError, match="unknown backbone 'gcn'"):
        chosen(load_config(PretrainConfig, None, ["model.arch=gcn"]).model)
    with pytest.raises(ConfigError, match="unknown backbone 'gcn'"):
        build_classifier({"name": "gcn", "config": {}}, {"name": "linear", "config": {}}, spec, 5)
    with pytest.raises(ConfigError, match="model.arch=gin"):
        build_method(method, chosen(load_config(PretrainConfig).model), spec)


@pytest.mark.parametrize("head", ["mlp", "strl"])
def test_layer_wise_lr_decay_reaches_every_gin_layer(head):
    spec = InputSpec.of("ntu25", XYZ, 8)
    net = build_classifier({"name": "gin", "config": {"feat_dim": 16, "hidden_dim": 16, "encoder_layers": 3}},
                           {"name": head, "config": {}}, spec, 5)
    encoder = net.encoder
    assert encoder.num_layers == 4  # lift + joint embedding, then 3 GIN layers
    groups = classifier_param_groups(net, 0.05, layer_decay=0.5)
    scale = {id(p): g["lr_scale"] for g in groups for p in g["params"]}
    assert len(scale) == sum(1 for p in net.parameters() if p.requires_grad)
    assert scale[id(encoder.lift.weight)] == scale[id(encoder.joint_embed)] == 0.5**4
    for i, layer in enumerate(encoder.layers):
        assert {scale[id(p)] for p in layer.parameters()} == {0.5 ** (3 - i)}, f"GIN layer {i}"
    head_params = [p for n, p in net.named_parameters() if not n.startswith("encoder.")]
    assert {scale[id(p)] for p in head_params} == {1.0}  # the head (and STRL's own layers) on top
    assert len({g["lr_scale"] for g in groups}) == 5
    if head == "strl":
        assert isinstance(net, STRLNet)
    flat = classifier_param_groups(net, 0.05, layer_decay=1.0)
    assert {g["lr_scale"] for g in flat} == {1.0}


# ---- end to end through the engine -------------------------------------------------------

GRAPH = ["model.arch=gin", "model.gin.feat_dim=16", "model.gin.hidden_dim=16"]


@pytest.fixture(scope="module")
def coco_scores(tmp_path_factory):
    """A tiny 2D COCO-17 set with detector scores, two persons (the second often absent)."""
    rng = np.random.default_rng(0)
    out = tmp_path_factory.mktemp("coco") / "tiny2d"
    with DatasetWriter(out, "coco17", ["x", "y", "score"], 2, ["a", "b", "c"], name="tiny2d") as writer:
        for i in range(18):
            frames = int(rng.integers(20, 40))
            seq = np.zeros((frames, 2, 17, 3), dtype=np.float32)
            for person in range(1 if i % 2 else 2):
                base = rng.normal(size=(17, 2)) * 0.3
                drift = np.linspace(0, 1, frames)[:, None, None] * rng.normal(size=(1, 17, 2)) * (i % 3 + 1) * 0.2
                seq[:, person, :, :2] = base + drift
                seq[:, person, :, 2] = rng.uniform(0.3, 1.0, size=(frames, 17))
            writer.add(seq, i % 3, f"clip{i:02d}")
        writer.add_split("train", list(range(12)))
        writer.add_split("test", list(range(12, 18)))
    return out


def _epoch_losses(run_dir) -> list[float]:
    lines = (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["train/loss"] for line in lines if "train/loss" in line]


@pytest.mark.parametrize("data", ["tiny_synth", "coco_scores"])
def test_pretrain_then_linear_probe_with_graph_mae(data, request, tmp_path, tiny):
    root = request.getfixturevalue(data)
    small_batch = [o for o in tiny.data if not o.startswith("data.batch_size=")] + ["data.batch_size=8"]
    common = small_batch + GRAPH + [f"data.root={root}"]
    pre = common + ["method.name=graph_mae", "method.graph_mae.mask=bodypart", "method.graph_mae.edge_weight=0.5",
                    f"train.output_dir={tmp_path / 'pre'}", "optim.warmup_epochs=1"]
    summary = run_pretrain(load_config(PretrainConfig, None, pre + ["train.epochs=2"]))
    ckpt = load_checkpoint(tmp_path / "pre" / "last.pt", kind="pretrain")
    assert ckpt["backbone"] == {"name": "gin", "config": {"feat_dim": 16, "hidden_dim": 16, "encoder_layers": 3}}
    assert ckpt["method"]["name"] == "graph_mae" and ckpt["method"]["config"]["edge_weight"] == 0.5
    assert isinstance(method_from_checkpoint(ckpt, "pre"), GraphMAE)  # the description rebuilds it
    resumed = run_pretrain(load_config(PretrainConfig, None, pre + ["train.epochs=3"]), resume=True)
    assert resumed["epochs"] == 3 and load_checkpoint(tmp_path / "pre" / "last.pt")["epoch"] == 2
    losses = _epoch_losses(tmp_path / "pre")
    assert len(losses) == 3 and summary["final_loss"] == losses[1] and resumed["final_loss"] == losses[2]
    assert losses[2] < losses[0]  # three short epochs already lower the masked-joint error

    lin = load_config(LinearConfig, None, common + [
        f"init={tmp_path / 'pre' / 'last.pt'}", f"train.output_dir={tmp_path / 'lin'}", "train.epochs=3",
        "augment=false",
    ])
    result = run_linear(lin)
    assert result["test"]["samples"] == len(SkeletonStore(root).split("test"))
    probe_losses = _epoch_losses(tmp_path / "lin")
    assert len(probe_losses) == 3 and probe_losses[-1] < probe_losses[0]  # the probe learns on frozen features
    probe = load_checkpoint(tmp_path / "lin" / "last.pt", kind="classifier")
    assert probe["backbone"] == ckpt["backbone"] and probe["head"]["name"] == "linear"
    pretrained = load_checkpoint(tmp_path / "pre" / "last.pt")["model"]
    assert all(torch.equal(probe["model"][k], v) for k, v in pretrained.items() if k.startswith("encoder."))  # frozen
