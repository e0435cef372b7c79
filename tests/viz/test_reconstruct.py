"""Predictions back to joints: exact on perfect predictions, true values on visible tokens."""

import numpy as np
import pytest
import torch

from skelmae.engine.checkpoint import load_checkpoint
from skelmae.errors import SkelmaeError
from skelmae.inference import SkeletonModel, load
from skelmae.models.common import InputSpec
from skelmae.models.st_mae import MAEConfig, SkeletonEncoder, SkeletonMAE, TransformerConfig, fold_persons, patchify
from skelmae.viz.reconstruct import predicted_positions, reconstruct, reconstruction_panels, unpatchify


def tiny_mae(target: str, norm_target: bool) -> SkeletonMAE:
    spec = InputSpec.of("ntu25", ["x", "y", "z"], 16)
    encoder = SkeletonEncoder(spec, TransformerConfig(segment=4, dim=32, depth=1, heads=4))
    method = MAEConfig(decoder_dim=16, decoder_depth=1, decoder_heads=2, mask="random", target=target, norm_target=norm_target)
    return SkeletonMAE(encoder, spec, method)


def test_unpatchify_inverts_patchify():
    seq = torch.randn(3, 12, 5, 2)
    assert torch.equal(unpatchify(patchify(seq, 4), 4), seq)


@pytest.mark.parametrize("target", ["coords", "motion"])
@pytest.mark.parametrize("norm_target", [True, False])
def test_perfect_prediction_gives_back_the_input(target, norm_target):
    model = tiny_mae(target, norm_target)
    seq = torch.randn(2, 16, 25, 3)
    positions = predicted_positions(model.make_target(seq), seq, target, norm_target, 4)
    assert torch.allclose(positions, seq, atol=1e-5)


def test_motion_is_integrated_from_the_true_first_frame_of_each_token():
    seq = torch.randn(1, 8, 25, 3)
    still = predicted_positions(torch.zeros(1, 2 * 25, 12), seq, "motion", False, 4)
    for start in (0, 4):
        for k in range(4):
            assert torch.equal(still[:, start + k], seq[:, start])


def test_visible_tokens_keep_the_input_and_absent_persons_stay_absent():
    model = tiny_mae("motion", True)
    x = torch.randn(1, 3, 16, 25, 2)
    x[..., 1] = 0  # no second person
    rec = reconstruct(model, x, torch.Generator().manual_seed(0))
    assert rec.input.shape == rec.output.shape == (16, 2, 25, 3) and rec.masked.shape == (16, 2, 25)
    assert np.allclose(rec.input, fold_persons(x).permute(1, 0, 2, 3).numpy())
    visible = ~rec.masked
    assert np.array_equal(rec.output[visible], rec.input[visible])
    assert not np.allclose(rec.output[:, 0][rec.masked[:, 0]], rec.input[:, 0][rec.masked[:, 0]])
    assert (rec.output[:, 1] == 0).all()
    assert rec.masked[:, 0].mean() == pytest.approx(model.mask_ratio, abs=0.02)
    for t in range(0, 16, 4):  # a token spans 4 frames of one joint
        assert (rec.masked[t : t + 4] == rec.masked[t]).all()
    panels = reconstruction_panels(rec)
    assert [p.greyed is not None for p in panels] == [False, True, False] and panels[2].predicted is rec.masked


def test_same_seed_same_mask_and_checkpoint_model(tiny_checkpoints, tiny_synth):
    from skelmae.data.storage import SkeletonStore

    model = load(tiny_checkpoints["mae"])
    seq = SkeletonStore(tiny_synth).sequence(0)
    a, b, c = model.reconstruct(seq, seed=1), model.reconstruct(seq, seed=1), model.reconstruct(seq, seed=2)
    assert np.array_equal(a.masked, b.masked) and np.array_equal(a.output, b.output)
    assert not np.array_equal(a.masked, c.masked)
    assert a.input.shape == (model.window, 2, 25, 3)


def test_reconstruction_needs_a_joint_modality_mae(tiny_checkpoints):
    with pytest.raises(SkelmaeError, match="needs a pre-training"):
        load(tiny_checkpoints["classifier"]).reconstruct(np.zeros((20, 25, 3), np.float32))
    state = load_checkpoint(tiny_checkpoints["mae"])
    state["data"]["modality"] = "bone"
    with pytest.raises(SkelmaeError, match="'bone' modality"):
        SkeletonModel(state).reconstruct(np.ones((20, 25, 3), np.float32))
