"""Absent (all-zero) persons are left out of the transformer's encoder, decoder, loss and
pooling, and the results for present persons equal the computation over every slot."""

import pytest
import torch

from skelmae.models.build import build_backbone, build_classifier
from skelmae.models.common import BACKBONES, InputSpec, fold_persons, person_mean, present_persons
from skelmae.models.st_mae import MAEConfig, SkeletonEncoder, SkeletonMAE, TransformerConfig, masked_mse, patchify
from skelmae.models.stgcn import STGCNConfig

SPEC = InputSpec.of("ntu25", ["x", "y", "z"], 16)
BACKBONE = TransformerConfig(segment=4, dim=32, depth=2, heads=4)


def _batch() -> torch.Tensor:
    """Four samples: both persons, only the first, only the second, nobody."""
    x = torch.randn(4, 3, 16, 25, 2, generator=torch.Generator().manual_seed(0))
    x[1, ..., 1] = 0
    x[2, ..., 0] = 0
    x[3] = 0
    return x


def _mae() -> SkeletonMAE:
    torch.manual_seed(0)
    return SkeletonMAE(SkeletonEncoder(SPEC, BACKBONE), SPEC, MAEConfig(decoder_dim=16, decoder_depth=1, decoder_heads=2))


def _rows_seen(module: torch.nn.Module) -> list[int]:
    seen: list[int] = []
    module.register_forward_hook(lambda m, i, o: seen.append(i[0].shape[0]))
    return seen


def test_present_persons_keeps_one_slot_of_an_empty_sample():
    x = _batch()
    assert present_persons(x).tolist() == [[True, True], [True, False], [False, True], [True, False]]
    x[0, 0, 3, 7, 1] = 0.5  # one non-zero number makes a person present
    x[1, ..., 1] = 0
    x[1, 1, 2, 3, 1] = 1e-3
    assert present_persons(x)[1].tolist() == [True, True]


def test_person_mean_averages_present_persons_only():
    values = torch.tensor([[[1.0], [3.0]], [[5.0], [100.0]]])
    present = torch.tensor([[True, True], [True, False]])
    assert person_mean(values, present).tolist() == [[2.0], [5.0]]
    assert person_mean(values, None).tolist() == [[2.0], [52.5]]


def test_encoder_skips_absent_persons_and_matches_the_full_computation():
    encoder = SkeletonEncoder(SPEC, BACKBONE).eval()
    x = _batch()
    seen = _rows_seen(encoder.blocks[0])
    with torch.no_grad():
        skipped = encoder(x)
        encoder.skip_absent = False
        every_slot = encoder(x)
        reference = encoder.forward_tokens(encoder.embed_tokens(encoder_patches(encoder, x))).reshape(skipped.shape)
    assert seen[:2] == [5, 8]  # 5 present persons (the empty sample keeps one) of 8 slots
    present = present_persons(x)
    torch.testing.assert_close(skipped[present], reference[present], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(every_slot[present], reference[present], rtol=1e-5, atol=1e-5)
    assert skipped[~present].abs().max() == 0 and every_slot[~present].abs().max() == 0


def encoder_patches(encoder: SkeletonEncoder, x: torch.Tensor) -> torch.Tensor:
    return patchify(fold_persons(x), encoder.segment)


def test_pretraining_loss_is_the_mean_over_present_persons_masked_tokens():
    model = _mae().eval()
    x = _batch()
    seen = _rows_seen(model.decoder_blocks[0])
    with torch.no_grad():
        skipped = model(x, generator=torch.Generator().manual_seed(3))
        model.encoder.skip_absent = False
        every_slot = model(x, generator=torch.Generator().manual_seed(3))
    assert seen == [5, 8]
    rows = present_persons(x).flatten().nonzero().squeeze(1)
    assert skipped.rows.tolist() == rows.tolist() == [0, 1, 2, 5, 6]
    assert every_slot.rows.tolist() == list(range(8))
    # the present persons' masks, reconstructions and targets are those of the full computation
    torch.testing.assert_close(skipped.mask, every_slot.mask[rows])
    torch.testing.assert_close(skipped.pred, every_slot.pred[rows], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(skipped.target, every_slot.target[rows])
    expected = masked_mse(every_slot.pred[rows], every_slot.target[rows], every_slot.mask[rows])
    torch.testing.assert_close(skipped.loss, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(every_slot.loss, expected, rtol=1e-5, atol=1e-6)


def test_pretraining_gradients_equal_with_and_without_skipping():
    model = _mae().train()
    x = _batch()
    grads = []
    for skip in (True, False):
        model.zero_grad()
        model.encoder.skip_absent = skip
        model(x, generator=torch.Generator().manual_seed(5)).loss.backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]))
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-6)


def test_classifier_pools_present_persons_only():
    backbone = {"name": "transformer", "config": vars(BACKBONE)}
    for head in ("linear", "mlp"):
        torch.manual_seed(0)
        model = build_classifier(backbone, {"name": head, "config": {}}, SPEC, 5).eval()
        x = _batch()
        with torch.no_grad():
            logits = model(x)
            alone = model(x[1:2, ..., :1])  # sample 1 without its empty slot
            second = model(x[2:3, ..., 1:])  # sample 2's present person alone
            features = model.features(x)
            model.encoder.skip_absent = False
            every_slot = model(x)
        torch.testing.assert_close(logits[1:2], alone, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(logits[2:3], second, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(logits, every_slot, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(features[1:2], model.features(x[1:2, ..., :1]), rtol=1e-4, atol=1e-5)


def test_backbones_that_mix_person_slots_keep_every_slot():
    stgcn = BACKBONES.build("stgcn", STGCNConfig(channels=4, dim=8), SPEC)
    assert not stgcn.independent_persons
    assert stgcn.present(_batch()).all()


@pytest.mark.parametrize("backbone", [
    {"name": "ctrgcn", "config": {"channels": 8, "dim": 16}},
    {"name": "infogcn", "config": {"channels": 8, "dim": 16}},
    {"name": "freqmixformer", "config": {"channels": 10, "stages": [1, 1], "heads": 2, "groups": 2}},
], ids=lambda b: b["name"])
def test_graph_backbones_encode_persons_independently_in_evaluation(backbone):
    """An absent (all-zero) slot changes nothing for the present person; as in the reference,
    every slot counts in the pooling (the input BatchNorm is shared by the folded persons)."""
    spec = InputSpec.of("ntu25", ("x", "y", "z"), 8)
    torch.manual_seed(0)
    encoder = build_backbone(backbone, spec).eval()
    x = torch.randn(2, 3, 8, 25, 2)
    x[1, ..., 1] = 0
    with torch.no_grad():
        both, alone = encoder(x), encoder(x[1:, ..., :1])
    torch.testing.assert_close(both[1:, :1], alone, rtol=1e-4, atol=1e-4)
    assert not encoder.independent_persons and encoder.present(x).all()
