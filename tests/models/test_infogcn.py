"""InfoGCN: relative positions, shapes on every layout, the attention graph convolution and the
information-bottleneck head (sampling, the regulariser and when it exists), config checks."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from skelmae.data.layouts import available_layouts, get_layout
from skelmae.engine.optim import classifier_param_groups
from skelmae.errors import ConfigError
from skelmae.models.build import build_backbone, build_classifier
from skelmae.models.common import InputSpec
from skelmae.models.infogcn import InfoGCN, InfoGCNConfig, bottleneck_regulariser, relative_position_matrix

SMALL = {"channels": 8, "dim": 16}
HEAD = {"name": "infogcn", "config": {"z_dim": 8}}
USER_LAYOUT = {
    "name": "tiny_user", "joints": ["hip", "chest", "head", "left", "right"],
    "parents": [None, "hip", "chest", "chest", "chest"],
    "groups": {"trunk": ["hip", "chest", "head"], "arms": ["left", "right"]},
}
LAYOUTS = [*available_layouts(), USER_LAYOUT]


def _classifier(spec, head=HEAD, classes=5, **backbone):
    torch.manual_seed(0)
    return build_classifier({"name": "infogcn", "config": {**SMALL, **backbone}}, head, spec, classes)


def test_relative_positions_take_the_k_th_ancestor():
    layout = get_layout("ntu25")
    parents = np.array(layout.parents)
    x = np.random.default_rng(0).normal(size=(25, 3))
    np.testing.assert_array_equal(relative_position_matrix(layout, 0), np.eye(25))
    for k in (1, 2):
        ancestor = np.arange(25)
        for _ in range(k):
            ancestor = parents[ancestor]
        depth_ok = np.array([len(_chain(parents, j)) > k for j in range(25)])  # joints with a k-th ancestor
        expected = np.where(depth_ok[:, None], x - x[ancestor], x)
        np.testing.assert_allclose(relative_position_matrix(layout, k) @ x, expected, atol=1e-6)
    np.testing.assert_array_equal(relative_position_matrix(layout, 8), np.eye(25))  # no joint is 8 bones deep


def _chain(parents, joint):
    """The joint and its ancestors up to the root."""
    chain = [joint]
    while parents[chain[-1]] != chain[-1]:
        chain.append(parents[chain[-1]])
    return chain


@pytest.mark.parametrize("layout", LAYOUTS, ids=str)
@pytest.mark.parametrize("channels, persons", [(("x", "y", "z"), 2), (("x", "y", "score"), 1)])
def test_output_shape_on_any_layout_2d_and_3d(layout, channels, persons):
    spec = InputSpec.of(layout, channels, 9)
    encoder = InfoGCN(spec, InfoGCNConfig(**SMALL, k_hop=2))
    x = torch.randn(2, 3, 9, spec.num_joints, persons)
    assert encoder(x).shape == (2, persons, 3, spec.num_joints, 16)
    assert encoder.pooled(x).shape == (2, 16)


def test_the_score_of_2d_poses_is_not_made_relative():
    spec = InputSpec.of("coco17", ("x", "y", "score"), 8)
    encoder = InfoGCN(spec, InfoGCNConfig(**SMALL, k_hop=1))
    seen = []
    encoder.joint_embedding.register_forward_hook(lambda m, i, o: seen.append(i[0]))
    x = torch.rand(1, 3, 8, 17, 1)
    encoder(x)
    embedded = seen[0][0, 0]  # (T, V, C) of the one person
    torch.testing.assert_close(embedded[..., 2], x[0, 2, :, :, 0])
    relative = torch.from_numpy(relative_position_matrix(spec.layout, 1))
    torch.testing.assert_close(embedded[..., :2], torch.einsum("uv,ctv->tuc", relative, x[0, :2, :, :, 0]))


def test_attention_multiplies_a_shared_topology_that_starts_as_the_identity():
    spec = InputSpec.of("kinect20", ("x", "y", "z"), 8)
    encoder = InfoGCN(spec, InfoGCNConfig(**SMALL, heads=2))
    graph_conv = encoder.blocks[0].graph_conv
    torch.testing.assert_close(graph_conv.shared.detach(), torch.eye(20).repeat(2, 1, 1))
    attention = graph_conv.attention(torch.randn(3, 8, 4, 20))
    assert attention.shape == (3, 4, 2, 20, 20)
    torch.testing.assert_close(attention.sum(dim=-1), torch.ones(3, 4, 2, 20))
    encoder(torch.randn(2, 3, 8, 20, 1)).square().mean().backward()
    assert graph_conv.shared.grad[:, 0, 1].abs().sum() > 0  # off-diagonal entries learn too


def test_regulariser_matches_the_authors_per_class_formula():
    generator = torch.Generator().manual_seed(0)
    z, prior = torch.randn(10, 6, generator=generator), torch.randn(4, 6, generator=generator)
    labels = torch.tensor([0, 0, 2, 2, 2, 3, 0, 3, 2, 0])  # class 1 absent from the batch
    mmd, l2 = bottleneck_regulariser(z, labels, prior)
    seen = [c for c in range(4) if (labels == c).any()]
    means = torch.stack([z[labels == c].mean(dim=0) for c in seen])
    torch.testing.assert_close(mmd, F.mse_loss(means, prior[seen]))
    torch.testing.assert_close(l2, torch.linalg.norm(z.mean(dim=0)))


def test_training_forward_leaves_a_regulariser_that_reaches_the_network_once():
    spec = InputSpec.of("ntu25", ("x", "y", "z"), 8)
    model = _classifier(spec).train()
    x, y = torch.randn(4, 3, 8, 25, 1), torch.tensor([0, 1, 1, 4])
    logits = model(x)
    auxiliary = model.auxiliary_loss(y)
    assert auxiliary is not None and auxiliary.ndim == 0 and auxiliary.item() > 0
    assert model.auxiliary_loss(y) is None  # taken once per forward
    (F.cross_entropy(logits, y) + auxiliary).backward()
    assert all(p.grad is not None for p in model.parameters())
    model.zero_grad()
    model(x)
    model.auxiliary_loss(y).backward()  # alone, it trains the latent's mean and the encoder
    assert model.head.fc_mu.weight.grad.abs().sum() > 0 and model.encoder.blocks[0].graph_conv.mix.weight.grad.abs().sum() > 0
    assert "z_prior" in dict(model.named_buffers()) and "z_prior" in model.state_dict()
    assert not any(name.endswith("z_prior") for name, _ in model.named_parameters())  # fixed, as published


def test_evaluation_uses_the_latent_mean_and_has_no_regulariser():
    spec = InputSpec.of("ntu25", ("x", "y", "z"), 8)
    model = _classifier(spec)
    x, y = torch.randn(4, 3, 8, 25, 1), torch.tensor([0, 1, 2, 3])
    model.train()
    torch.manual_seed(1)
    first = model(x)
    assert not torch.allclose(first, model(x))  # training samples z
    model.eval()
    evaluated = model(x)
    assert model.auxiliary_loss(y) is None
    torch.testing.assert_close(evaluated, model(x))
    model.train()
    with torch.no_grad():
        model(x)
    assert model.auxiliary_loss(y) is None  # nothing kept without gradients either


def test_class_prior_is_orthogonal_with_the_gain():
    spec = InputSpec.of("ntu25", ("x", "y", "z"), 8)
    model = _classifier(spec, {"name": "infogcn", "config": {"z_dim": 16, "prior_gain": 3.0}}, classes=6)
    prior = model.z_prior
    torch.testing.assert_close(prior @ prior.T, 9.0 * torch.eye(6), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("head", ["fc", "linear", "mlp"])
def test_other_heads_fit_the_backbone(head):
    spec = InputSpec.of("ntu25", ("x", "y", "z"), 8)
    model = _classifier(spec, {"name": head, "config": {}})
    assert model(torch.randn(2, 3, 8, 25, 1)).shape == (2, 5)
    scales = {g["lr_scale"] for g in classifier_param_groups(model, 5e-4, layer_decay=0.5)}
    assert len(scales) == model.encoder.num_layers + 1 == 11  # the embedding, nine blocks, the head


def test_the_bottleneck_head_fits_ctrgcn():
    spec = InputSpec.of("ntu25", ("x", "y", "z"), 8)
    model = build_classifier({"name": "ctrgcn", "config": SMALL}, HEAD, spec, 5).train()
    model(torch.randn(2, 3, 8, 25, 1))
    assert model.auxiliary_loss(torch.tensor([0, 1])) is not None


@pytest.mark.parametrize("config, message", [
    ({"k_hop": -1}, "k_hop must be a non-negative integer"),
    ({"heads": 0}, "heads must be a positive integer"),
    ({"channels": 6}, "channels must be a positive multiple of 4"),
    ({"temporal_kernel": 0}, "temporal_kernel must be odd"),
    ({"attention_reduction": 32}, "attention_reduction must be between 1 and channels"),
])
def test_bad_backbone_values_are_refused_by_name(config, message):
    with pytest.raises(ConfigError, match=f"backbone 'infogcn': {message}"):
        build_backbone({"name": "infogcn", "config": {**SMALL, **config}}, InputSpec.of("ntu25", ("x", "y", "z"), 8))


@pytest.mark.parametrize("config, message", [
    ({"z_dim": 0}, "z_dim must be a positive integer"),
    ({"lambda_mmd": -0.1}, "lambda_mmd must be non-negative"),
    ({"noise_ratio": -1.0}, "noise_ratio must be non-negative"),
    ({"dropout": 1.5}, r"dropout must be in \[0, 1\)"),
])
def test_bad_head_values_are_refused_by_name(config, message):
    with pytest.raises(ConfigError, match=f"head 'infogcn': {message}"):
        _classifier(InputSpec.of("ntu25", ("x", "y", "z"), 8), {"name": "infogcn", "config": config})
