import pytest
import torch

from skelmae.models.masking import STRATEGIES, mask_tokens, token_motion, visible_count

S, V = 10, 10  # 100 tokens; ratio 0.7 keeps 30 = three whole joints or three whole segments


def _mask(strategy, batch=16, ratio=0.7, seed=0, **kw):
    g = torch.Generator().manual_seed(seed)
    groups = torch.tensor([0, 0, 1, 1, 1, 2, 2, 3, 3, 4])
    return mask_tokens(strategy, ratio, batch, S, V, generator=g, joint_groups=groups,
                       patches=kw.pop("patches", torch.randn(batch, S, V, 12)), **kw)


def test_visible_count_matches_reference():
    assert visible_count(750, 0.9) == 74  # int(750 * 0.1) in floating point, as in MAMP
    assert visible_count(100, 0.7) == 30
    assert visible_count(100, 0.8) == 19  # 100 * (1 - 0.8) = 19.999...: the same truncation
    with pytest.raises(ValueError):
        visible_count(100, 1.0)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_keeps_exactly_n_visible(strategy):
    m = _mask(strategy)
    assert m.ids_keep.shape == (16, 30)
    assert (m.mask.sum(1) == 70).all()
    assert (m.mask.gather(1, m.ids_keep) == 0).all()
    assert (m.ids_keep[:, 1:] > m.ids_keep[:, :-1]).all()  # sorted and unique
    # the decoder input is [visible latents, mask tokens]; ids_restore puts it back in grid order
    assert torch.equal(m.ids_restore.sort(1).values, torch.arange(100).expand(16, -1))
    visible = m.mask == 0
    assert (m.ids_restore[visible] < 30).all() and (m.ids_restore[~visible] >= 30).all()
    grid = torch.arange(100).expand(16, -1)
    assert torch.equal(m.ids_keep.gather(1, m.ids_restore.clamp_max(29))[visible], grid[visible])


def _kept_grid(m, b):
    keep = m.ids_keep[b]
    return set((keep // V).tolist()), set((keep % V).tolist())


def test_joint_and_frame_masking_mask_whole_units():
    for b in range(16):
        segments, joints = _kept_grid(_mask("joint"), b)
        assert len(joints) == 3 and len(segments) == S
        segments, joints = _kept_grid(_mask("frame"), b)
        assert len(segments) == 3 and len(joints) == V


def test_spatiotemporal_masks_joints_and_frames_together():
    st, rnd = _mask("spatiotemporal"), _mask("random")
    for b in range(16):
        segments, joints = _kept_grid(st, b)
        assert len(segments) * len(joints) <= 60  # near a kept-joints x kept-frames grid
        segments, joints = _kept_grid(rnd, b)
        assert len(segments) * len(joints) > 60


def test_bodypart_masks_whole_groups():
    m = _mask("bodypart")
    groups = torch.tensor([0, 0, 1, 1, 1, 2, 2, 3, 3, 4])
    for b in range(16):
        _, joints = _kept_grid(m, b)
        kept_groups = {int(groups[j]) for j in joints}
        # 30 kept tokens = 3 joints' worth: whole groups in random order, the last one partially
        assert len(kept_groups) <= 2


def test_motion_aware_masking_masks_moving_tokens_more_often():
    batch = 256
    patches = torch.zeros(batch, S, V, 12)
    patches[:, :, :5] = torch.randn(batch, S, 5, 12)  # joints 0-4 move, 5-9 are still
    m = _mask("motion", batch=batch, ratio=0.5, patches=patches, tau=0.8)
    rate = m.mask.reshape(batch, S, V).mean(dim=(0, 1))
    assert rate[:5].mean() > rate[5:].mean() + 0.1
    still = _mask("motion", batch=batch, ratio=0.5, patches=torch.zeros(batch, S, V, 12))
    assert (still.mask.reshape(batch, S, V).mean(dim=(0, 1)) - 0.5).abs().max() < 0.1  # uniform


def test_token_motion_first_segment_copies_second():
    p = torch.zeros(1, 3, 1, 2)
    p[0, 1] = 1.0
    p[0, 2] = 3.0
    assert token_motion(p)[0, :, 0].tolist() == [1.0, 1.0, 2.0]


def test_unknown_strategy():
    with pytest.raises(ValueError, match="unknown mask strategy"):
        _mask("tube")


@pytest.mark.parametrize("strategy", ["random", "spatiotemporal", "motion"])
def test_masks_do_not_depend_on_the_number_of_processes(strategy):
    samples, persons, world = 8, 2, 2
    patches = torch.randn(samples * persons, S, V, 12)
    whole = mask_tokens(strategy, 0.7, samples * persons, S, V, generator=torch.Generator().manual_seed(5),
                        patches=patches, rows_per_sample=persons).mask
    per_sample = whole.reshape(samples, persons, -1)
    for rank in range(world):
        rows = patches.reshape(samples, persons, S, V, 12)[rank::world].reshape(-1, S, V, 12)
        part = mask_tokens(strategy, 0.7, rows.shape[0], S, V, generator=torch.Generator().manual_seed(5),
                           patches=rows, shard=(rank, world), rows_per_sample=persons).mask
        assert torch.equal(part.reshape(samples // world, persons, -1), per_sample[rank::world])
