"""ST-GCN: the spatial-configuration partition, shapes on several layouts, lr-decay layers."""

import numpy as np
import pytest
import torch

from skelmae.data.layouts import get_layout
from skelmae.engine.optim import classifier_param_groups
from skelmae.models.build import build_classifier
from skelmae.models.common import InputSpec
from skelmae.models.stgcn import STGCN, STGCNConfig, hop_distance, spatial_partitions

SMALL = STGCNConfig(channels=4, dim=16)


def test_partitions_split_each_neighbourhood_by_distance_to_the_centre():
    layout = get_layout("ntu25")
    root, centripetal, centrifugal = spatial_partitions(layout)
    to_centre = hop_distance(layout, layout.num_joints)[:, layout.root]
    assert np.all(np.diag(root) > 0) and not np.diag(centripetal).any() and not np.diag(centrifugal).any()
    for child, parent in layout.bones:  # the parent is one bone closer to the centre than the child
        assert to_centre[parent] == to_centre[child] - 1
        assert centripetal[child, parent] > 0 and centrifugal[parent, child] > 0
        assert root[child, parent] == centrifugal[child, parent] == 0
    total = root + centripetal + centrifugal
    np.testing.assert_allclose(total.sum(axis=0), 1.0, atol=1e-6)  # column-normalised adjacency
    assert ((total > 0) == (layout.adjacency(self_loops=True) > 0)).all()


def test_far_from_the_centre_edges_are_not_all_root_edges():
    """The paper's definition: the wrist-hand bone is centripetal/centrifugal, not a root edge."""
    layout = get_layout("ntu25")
    _, centripetal, _ = spatial_partitions(layout)
    hand, wrist = 7, 6  # 0-based Kinect v2 joints 8 and 7, four bones from the centre
    assert centripetal[hand, wrist] > 0


@pytest.mark.parametrize("layout, channels", [("ntu25", ("x", "y", "z")), ("coco17", ("x", "y", "score")),
                                              ("kinect20", ("x", "y", "z"))])
def test_output_shape_on_any_layout(layout, channels):
    spec = InputSpec.of(layout, channels, 20)
    encoder = STGCN(spec, SMALL)
    x = torch.randn(2, 3, 20, spec.num_joints, 2)
    assert encoder(x).shape == (2, 2, 5, spec.num_joints, 16)
    assert encoder.pooled(x).shape == (2, 16)


def test_stgcn_trains_as_a_classifier_with_layer_decay():
    spec = InputSpec.of("ntu25", ("x", "y", "z"), 16)
    model = build_classifier({"name": "stgcn", "config": vars(SMALL)}, {"name": "linear", "config": {}}, spec, 5)
    groups = classifier_param_groups(model, 0.05, layer_decay=0.5)
    scales = sorted({g["lr_scale"] for g in groups})
    assert len(scales) == model.encoder.num_layers + 1 == 12  # input BN, ten blocks, the head
    x, y = torch.randn(4, 3, 16, 25, 1), torch.tensor([0, 1, 2, 3])
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_edge_importance_can_be_frozen():
    spec = InputSpec.of("ntu25", ("x", "y", "z"), 8)
    encoder = STGCN(spec, STGCNConfig(channels=4, dim=8, edge_importance=False))
    assert not any(p.requires_grad for name, p in encoder.named_parameters() if name.endswith("importance"))


def test_even_temporal_kernel_is_refused():
    with pytest.raises(ValueError, match="temporal_kernel must be odd"):
        STGCN(InputSpec.of("ntu25", ("x", "y", "z"), 8), STGCNConfig(temporal_kernel=4))
