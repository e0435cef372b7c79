"""CTR-GCN: the graph subsets (against the authors' NTU graph), shapes on every layout, persons,
heads, lr-decay layers and the config checks."""

import numpy as np
import pytest
import torch

from skelmae.data.layouts import available_layouts, get_layout
from skelmae.engine.optim import classifier_param_groups
from skelmae.errors import ConfigError
from skelmae.models.build import build_backbone, build_classifier
from skelmae.models.common import InputSpec
from skelmae.models.ctrgcn import CTRGCN, CTRGCNConfig, graph_subsets

SMALL = {"channels": 8, "dim": 16}
USER_LAYOUT = {  # a user's 5-joint layout: a trunk with two branches
    "name": "tiny_user", "joints": ["hip", "chest", "head", "left", "right"],
    "parents": [None, "hip", "chest", "chest", "chest"],
    "groups": {"trunk": ["hip", "chest", "head"], "arms": ["left", "right"]}, "left_right": [["left", "right"]],
}
LAYOUTS = [*available_layouts(), USER_LAYOUT]
# CTR-GCN's graph/ntu_rgb_d.py: inward_ori_index, 1-based (joint, the neighbour towards spine-shoulder 21)
AUTHORS_NTU_INWARD = [(1, 2), (2, 21), (3, 21), (4, 3), (5, 21), (6, 5), (7, 6), (8, 7), (9, 21), (10, 9), (11, 10),
                      (12, 11), (13, 1), (14, 13), (15, 14), (16, 15), (17, 1), (18, 17), (19, 18), (20, 19), (22, 23),
                      (23, 8), (24, 25), (25, 12)]


def _authors_subsets(pairs, num_joints):
    """The authors' tools.get_spatial_graph: edge2mat puts A[j, i] = 1 for (i, j); normalize_digraph divides columns."""
    def edge2mat(links):
        a = np.zeros((num_joints, num_joints))
        for i, j in links:
            a[j, i] = 1
        return a

    def normalise(a):
        sums = a.sum(axis=0)
        return a @ np.diag(np.where(sums > 0, 1 / np.where(sums > 0, sums, 1), 0))

    inward = [(i - 1, j - 1) for i, j in pairs]
    outward = [(j, i) for i, j in inward]
    return np.stack([np.eye(num_joints), normalise(edge2mat(inward)), normalise(edge2mat(outward))])


def test_subsets_equal_the_authors_ntu_graph():
    np.testing.assert_allclose(graph_subsets(get_layout("ntu25")), _authors_subsets(AUTHORS_NTU_INWARD, 25), atol=1e-7)


@pytest.mark.parametrize("layout", LAYOUTS, ids=str)
def test_inward_and_outward_follow_the_bone_tree_of_any_layout(layout):
    layout = get_layout(layout)
    identity, inward, outward = graph_subsets(layout)
    np.testing.assert_array_equal(identity, np.eye(layout.num_joints))
    for child, parent in layout.bones:
        assert inward[parent, child] == 1.0  # a child has one parent: its column sums to 1
        assert outward[child, parent] > 0
    assert not inward[:, layout.root].any()  # nothing is inward of the root
    np.testing.assert_allclose(outward.sum(axis=0)[[p for _, p in layout.bones]], 1.0, rtol=1e-6)


@pytest.mark.parametrize("layout", LAYOUTS, ids=str)
@pytest.mark.parametrize("channels, persons", [(("x", "y", "z"), 2), (("x", "y", "score"), 1)])
def test_output_shape_on_any_layout_2d_and_3d(layout, channels, persons):
    spec = InputSpec.of(layout, channels, 9)
    encoder = CTRGCN(spec, CTRGCNConfig(**SMALL))
    x = torch.randn(2, 3, 9, spec.num_joints, persons)
    assert encoder(x).shape == (2, persons, 3, spec.num_joints, 16)  # odd clip length: ceil(9 / 4) steps
    assert encoder.pooled(x).shape == (2, 16)


@pytest.mark.parametrize("head", ["fc", "linear", "mlp"])
def test_trains_as_a_classifier_with_each_head(head):
    spec = InputSpec.of("kinect20", ("x", "y", "z"), 12)
    model = build_classifier({"name": "ctrgcn", "config": SMALL}, {"name": head, "config": {}}, spec, 5)
    x, y = torch.randn(4, 3, 12, 20, 1), torch.tensor([0, 1, 2, 3])
    torch.nn.functional.cross_entropy(model(x), y).backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    assert model.auxiliary_loss(y) is None  # no regulariser: the classification loss alone


def test_refinement_starts_at_the_shared_topology_and_learns_its_weight():
    """alpha starts at 0, so the first forward aggregates with the skeleton's subsets; its gradient is not zero."""
    spec = InputSpec.of("ntu25", ("x", "y", "z"), 8)
    encoder = CTRGCN(spec, CTRGCNConfig(**SMALL))
    graph_conv = encoder.blocks[3].graph_conv
    assert graph_conv.alpha.item() == 0.0
    torch.testing.assert_close(graph_conv.shared.detach(), torch.from_numpy(graph_subsets(spec.layout)))
    encoder(torch.randn(2, 3, 8, 25, 1)).square().mean().backward()
    assert graph_conv.alpha.grad.abs().item() > 0


def test_layer_decay_groups_and_fixed_topology():
    spec = InputSpec.of("ntu25", ("x", "y", "z"), 8)
    model = build_classifier({"name": "ctrgcn", "config": SMALL}, {"name": "fc", "config": {}}, spec, 5)
    scales = {g["lr_scale"] for g in classifier_param_groups(model, 4e-4, layer_decay=0.5)}
    assert len(scales) == model.encoder.num_layers + 1 == 12  # input BN, ten blocks, the head
    fixed = CTRGCN(spec, CTRGCNConfig(**SMALL, adaptive=False))
    assert not any(p.requires_grad for name, p in fixed.named_parameters() if name.endswith("shared"))


def test_default_is_the_published_size():
    encoder = CTRGCN(InputSpec.of("ntu25", ("x", "y", "z"), 64), CTRGCNConfig())
    assert encoder.dim == 256
    assert 1.40e6 < sum(p.numel() for p in encoder.parameters()) < 1.46e6  # the paper: 1.46 M with the classifier


@pytest.mark.parametrize("config, message", [
    ({"temporal_kernel": 4}, "temporal_kernel must be odd"),
    ({"channels": 10}, "channels must be a positive multiple of 4"),
    ({"dim": 30}, "dim must be a positive multiple of 4"),
    ({"dilations": []}, "dilations must be a non-empty list"),
    ({"dilations": [1, 2, 3], "channels": 8}, "channels must be a positive multiple of 5"),
    ({"rel_reduction": 16, "channels": 8}, "rel_reduction must be between 1 and channels"),
])
def test_bad_config_values_are_refused_by_name(config, message):
    with pytest.raises(ConfigError, match=f"backbone 'ctrgcn': {message}"):
        build_backbone({"name": "ctrgcn", "config": {**SMALL, **config}}, InputSpec.of("ntu25", ("x", "y", "z"), 8))


def test_head_dropout_is_checked():
    spec = InputSpec.of("ntu25", ("x", "y", "z"), 8)
    with pytest.raises(ConfigError, match=r"head 'fc': dropout must be in \[0, 1\)"):
        build_classifier({"name": "ctrgcn", "config": SMALL}, {"name": "fc", "config": {"dropout": 1.0}}, spec, 5)
