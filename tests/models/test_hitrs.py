"""Hi-TRS: clip layout, shapes for any layout and window, the clip-level attention mask, the
BERT-style joint masking and swaps, and every level's pretext loss falling on the synthetic set."""

import math

import pytest
import torch

from skelmae.config import DataConfig
from skelmae.data.storage import SkeletonStore
from skelmae.engine.common import make_dataset
from skelmae.errors import ConfigError
from skelmae.models.build import build_backbone, build_classifier, build_method
from skelmae.models.common import InputSpec
from skelmae.models.hitrs import clip_attention_mask, clip_starts, far_pairs, swapped

TINY = {"dim": 16, "depth": 2, "heads": 2, "clip_len": 4, "dilation": 1, "stride": 4}


def _backbone(**cfg):
    return {"name": "hitrs", "config": {**TINY, **cfg}}


def _method(spec, backbone=None, **cfg):
    torch.manual_seed(0)
    return build_method({"name": "hitrs", "config": cfg}, backbone or _backbone(), spec)


def test_clips_cover_the_window_and_the_last_one_ends_on_its_last_frame():
    assert clip_starts(16, 4, 1, 4) == [0, 4, 8, 12]
    assert clip_starts(18, 4, 1, 4) == [0, 4, 8, 12, 14]  # not a multiple: one more clip, ending on frame 17
    published = clip_starts(120, 7, 2, 7)  # 7 frames, every 2nd, a new clip every 7 frames
    assert published[:16] == list(range(0, 106, 7)) and published[-1] == 120 - 13 and len(published) == 17
    spec = InputSpec.of("ntu25", ("x", "y", "z"), 120)
    encoder = build_backbone({"name": "hitrs", "config": {}}, spec)
    index = encoder.clip_index
    assert index.shape == (17, 7) and torch.equal(index[1], torch.arange(7, 20, 2))
    # interleaved clips (dilation 2) leave out the odd frames before the second clip starts and the
    # even ones after the second last ends (the reference pads zero frames there instead)
    assert set(range(120)) - set(index.flatten().tolist()) == {1, 3, 5, 112, 114, 116, 118}
    dense = build_backbone(_backbone(), spec.with_frames(18)).clip_index
    assert set(dense.flatten().tolist()) == set(range(18))  # dilation 1: every frame is in a clip


@pytest.mark.parametrize("cfg, window, message", [
    ({"clip_len": 7, "dilation": 2}, 12, "model.hitrs.clip_len=7 .* spans 13 frames, more than the window of 12"),
    ({"max_clips": 3}, 16, "makes 4 clips, more than model.hitrs.max_clips=3"),
    ({"dim": 18, "heads": 4}, 16, "model.hitrs.dim=18 must be a positive multiple of model.hitrs.heads=4"),
    ({"stride": 5}, 16, "1 <= stride <= the clip's span"),
])
def test_impossible_settings_name_the_config_field(cfg, window, message):
    with pytest.raises(ConfigError, match=message):
        build_backbone(_backbone(**cfg), InputSpec.of("ntu25", ("x", "y", "z"), window))


def test_pretraining_needs_three_clips_and_swappable_frames():
    with pytest.raises(ConfigError, match="at least 3 clips per window .* data.window=8 .* makes 2"):
        _method(InputSpec.of("ntu25", ("x", "y", "z"), 8))
    with pytest.raises(ConfigError, match="model.hitrs.clip_len must be at least 3"):
        _method(InputSpec.of("ntu25", ("x", "y", "z"), 16), _backbone(clip_len=2, stride=2))


@pytest.mark.parametrize("layout, channels, window", [
    ("ntu25", ("x", "y", "z"), 16),
    ("coco17", ("x", "y", "score"), 18),  # 2D poses with scores; a window that is no multiple of the clip
    ("kinect20", ("x", "y", "z"), 32),
])
def test_features_and_heads_for_any_layout_and_window(layout, channels, window):
    spec = InputSpec.of(layout, channels, window)
    x = torch.randn(3, len(channels), window, spec.num_joints, 2)
    encoder = build_backbone(_backbone(), spec)
    assert (encoder.dim, encoder.num_joints) == (64, 1)
    assert encoder(x).shape == (3, 2, 1, 1, 64) and encoder.pooled(x).shape == (3, 64)
    for head in ("linear", "mlp"):
        model = build_classifier(_backbone(), {"name": head, "config": {}}, spec, num_classes=5).eval()
        assert model(x).shape == (3, 5)
    out = _method(spec)(x, torch.Generator().manual_seed(0))
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)


def test_absent_persons_are_zero_and_left_out():
    spec = InputSpec.of("ntu25", ("x", "y", "z"), 16)
    encoder = build_backbone(_backbone(), spec).eval()
    x = torch.randn(2, 3, 16, 25, 2)
    x[1, ..., 1] = 0
    feats = encoder(x)
    assert feats[1, 1].abs().sum() == 0 and feats[0, 1].abs().sum() > 0
    torch.testing.assert_close(feats[1, 0], encoder(x[1:, ..., :1])[0, 0])  # persons are encoded on their own
    encoder.skip_absent = False  # every slot computed (export): the same features
    torch.testing.assert_close(encoder(x), feats)


def test_clip_level_joints_see_other_frames_not_their_own_frames_other_joints():
    allowed = clip_attention_mask(clip_len=2, joints=3)  # tokens (frame 0: 0-2, frame 1: 3-5), clip token 6
    assert allowed.shape == (7, 7) and allowed[6].all() and allowed[:, 6].all()
    assert allowed.diagonal().all() and not allowed[0, 1] and not allowed[4, 5]
    assert allowed[0, 3:6].all() and allowed[5, :3].all()


def test_layer_ids_order_the_levels_for_layer_decay():
    encoder = build_backbone(_backbone(), InputSpec.of("ntu25", ("x", "y", "z"), 16))
    ids = {name: encoder.layer_id(name) for name, _ in encoder.named_parameters()}
    assert encoder.num_layers == 7 and set(ids.values()) == set(range(7))
    assert ids["joint_pos"] == 0 and ids["frame_blocks.1.mlp.0.weight"] == 2
    assert ids["clip_token"] == ids["clip_blocks.0.norm1.weight"] == 3 and ids["video_blocks.1.attn.qkv.bias"] == 6


def test_swaps_exchange_two_positions_at_least_two_apart():
    pairs = far_pairs(7)
    assert len(pairs) == 15 and ((pairs[:, 1] - pairs[:, 0]) >= 2).all()
    assert far_pairs(2).tolist() == [[0, 1]]  # two context clips can only trade places
    index = torch.arange(7).expand(500, -1)
    out = swapped(index, pairs, torch.rand(500, generator=torch.Generator().manual_seed(0)))
    moved = out != index
    assert (moved.sum(1) == 2).all() and torch.equal(out.sort(1).values, index)
    positions = moved.nonzero()[:, 1].view(-1, 2)
    assert (positions[:, 1] - positions[:, 0] >= 2).all()


def test_joints_are_masked_bert_style():
    spec = InputSpec.of("ntu25", ("x", "y", "z"), 32)
    model = _method(spec)
    seq = torch.randn(64, 32, 25, 3)
    noise = model.draws(seq, torch.Generator().manual_seed(0), (0, 1), 1)
    masked, mask = model.mask_joints(seq, noise)
    assert mask.mean().item() == pytest.approx(0.15, abs=0.01)
    kept = (masked == seq).all(-1)
    token = (masked == model.mask_value).all(-1)
    assert kept[mask == 0].all()  # unmasked joints reach the encoder unchanged
    chosen = mask.bool()
    assert token[chosen].float().mean().item() == pytest.approx(0.8, abs=0.02)
    assert kept[chosen].float().mean().item() == pytest.approx(0.1, abs=0.02)  # masked, but left as they are
    other = chosen & ~token & ~kept  # replaced by a joint of another frame
    source = seq.flatten(1, 2)  # each replacement is some other (frame, joint) of the same sequence
    b, t, v = other.nonzero(as_tuple=True)
    hits = (masked[b, t, v][:, None] == source[b]).all(-1)
    assert hits.any(1).all() and not hits.gather(1, (t * 25 + v)[:, None]).any()


def test_noise_does_not_depend_on_the_number_of_processes():
    spec = InputSpec.of("ntu25", ("x", "y", "z"), 16)
    model = _method(spec)
    seq = torch.randn(8, 16, 25, 3)  # 4 samples of 2 persons
    whole = model.draws(seq, torch.Generator().manual_seed(3), (0, 1), 2)
    for rank in (0, 1):
        part = model.draws(seq[:4], torch.Generator().manual_seed(3), (rank, 2), 2)
        rows = torch.tensor([r for s in range(rank, 4, 2) for r in (2 * s, 2 * s + 1)])
        for name in whole:
            torch.testing.assert_close(part[name], whole[name][rows])


@pytest.fixture(scope="module")
def fitted(tiny_synth):
    """The whole method fitted to one fixed batch of 8 synthetic clips (fixed noise): the four
    terms at the first and the last of 120 Adam steps. The levels need each other: the order
    tasks learn once the frame and clip features tell frames and clips apart."""
    store = SkeletonStore(tiny_synth)
    data = DataConfig(window=16, batch_size=8, min_crop=8)
    dataset = make_dataset(store, data, "train", train=False)
    x = torch.stack([dataset[i][0] for i in range(0, 32, 4)])
    model = _method(InputSpec.of(store.layout, store.channels, 16))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    history = []
    for _ in range(120):
        terms = model.losses(x, torch.Generator().manual_seed(0))
        history.append({name: value.item() for name, value in terms.items()})
        optimizer.zero_grad()
        sum(terms.values()).backward()
        optimizer.step()
    return history[0], history[-1]


@pytest.mark.parametrize("level, below", [
    ("frame", None),  # masked pose prediction
    ("clip", 0.5 * math.log(2)),  # temporal order verification: well below chance
    ("video", 0.5 * math.log(2)),  # clip order verification
    ("future", None),  # discriminative future prediction
])
def test_each_pretext_loss_falls(fitted, level, below):
    first, last = fitted
    assert last[level] < 0.3 * first[level]
    if below is not None:
        assert last[level] < below


def test_forward_is_the_weighted_sum_and_every_parameter_learns():
    spec = InputSpec.of("ntu25", ("x", "y", "z"), 16)
    x = torch.randn(4, 3, 16, 25, 2)
    weights = {"frame_weight": 0.5, "clip_weight": 2.0, "video_weight": 0.0, "future_weight": 1.0}
    model = _method(spec, **weights)
    terms = model.losses(x, torch.Generator().manual_seed(1))
    out = model(x, torch.Generator().manual_seed(1))
    torch.testing.assert_close(out.loss, 0.5 * terms["frame"] + 2.0 * terms["clip"] + terms["future"])
    model = _method(spec)
    model(x, torch.Generator().manual_seed(1)).loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
