import numpy as np
import pytest
import torch
import torch.nn.functional as F

from skelmae.data.layouts import LayoutError, get_layout
from skelmae.data.transforms import (
    TRANSFORMS, AlignView, RandomFlip, RandomRotation, RandomShear, ToBone, ToMotion, ValidCropResize, build_transforms, resize_time,
    Views, valid_length,
)

NTU = get_layout("ntu25")


def _seq(t=50, c=3, seed=0):
    return np.random.default_rng(seed).normal(size=(c, t, 25, 2)).astype(np.float32)


@pytest.mark.parametrize("t_in, t_out", [(50, 120), (120, 32), (7, 7), (1, 16)])
def test_resize_matches_torch_linear_interpolation(t_in, t_out):
    x = _seq(t_in)
    c, t, v, m = x.shape
    ref = F.interpolate(torch.from_numpy(x).permute(0, 2, 3, 1).reshape(1, c * v * m, t), size=t_out,
                        mode="linear", align_corners=False)
    ref = ref.reshape(c, v, m, t_out).permute(0, 3, 1, 2).numpy()
    np.testing.assert_allclose(resize_time(x, t_out), ref, atol=5e-5)  # torch computes in float32


def test_valid_length_ignores_trailing_zero_frames():
    x = _seq(40)
    x[:, 30:] = 0
    assert valid_length(x) == 30
    assert valid_length(np.zeros((3, 5, 25, 2), np.float32)) == 5


def test_test_crop_is_centred_and_deterministic():
    x = np.zeros((3, 100, 25, 2), np.float32)
    x[0, :, 0, 0] = np.arange(100)
    out = ValidCropResize(100, (0.9,))(x, np.random.default_rng(0))
    # int((1 - 0.9) * 100 / 2) is 4 in floating point, as in the reference feeder: frames 4..95
    np.testing.assert_allclose(out, resize_time(x[:, 4:96], 100))


def test_train_crop_stays_inside_valid_frames():
    x = np.zeros((3, 300, 25, 2), np.float32)
    x[0, :100, 0, 0] = np.arange(1, 101)  # 100 valid frames, zero padding after
    crop = ValidCropResize(120, (0.5, 1.0), min_crop=64)
    for seed in range(50):
        out = crop(x, np.random.default_rng(seed))
        assert out.shape == (3, 120, 25, 2)
        span = out[0, -1, 0, 0] - out[0, 0, 0, 0]
        assert 63 - 1 <= span <= 99 and out[0, :, 0, 0].min() >= 1  # never reaches the padding


def test_rotation_preserves_lengths_and_absent_persons():
    x = _seq(20)
    x[..., 1] = 0
    out = RandomRotation(0.3)(x, np.random.default_rng(1))
    np.testing.assert_allclose(np.linalg.norm(out, axis=0), np.linalg.norm(x, axis=0), rtol=1e-5)
    assert (out[..., 1] == 0).all() and not np.allclose(out, x)


def test_planar_rotation_keeps_score_channel():
    x = _seq(20)
    out = RandomRotation(0.3, planar=True)(x, np.random.default_rng(1))
    np.testing.assert_array_equal(out[2], x[2])
    np.testing.assert_allclose(np.linalg.norm(out[:2], axis=0), np.linalg.norm(x[:2], axis=0), rtol=1e-5)


def test_bone_and_motion():
    x = _seq(10)
    bone = ToBone(NTU)(x, None)
    assert (bone[:, :, NTU.root] == 0).all()
    np.testing.assert_allclose(bone[:, :, 0], x[:, :, 0] - x[:, :, 1])  # spine_base -> spine_mid
    motion = ToMotion()(x, None)
    np.testing.assert_allclose(motion[:, :-1], x[:, 1:] - x[:, :-1])
    assert (motion[:, -1] == 0).all()
    planar = ToMotion(coords=2)(x, None)
    np.testing.assert_array_equal(planar[2], x[2])


def test_flip_twice_is_identity():
    x = _seq(10)
    flip = RandomFlip(NTU, p=1.0)
    once = flip(x, np.random.default_rng(0))
    assert not np.allclose(once, x)
    np.testing.assert_allclose(flip(once, np.random.default_rng(0)), x)


def test_pipelines():
    train = build_transforms(NTU, 32, train=True, modality="bone_motion")
    names = [type(t).__name__ for t in train.transforms]
    assert names == ["ValidCropResize", "RandomRotation", "ToBone", "ToMotion"]
    test = build_transforms(NTU, 32, train=False)
    x = _seq(60)
    np.testing.assert_array_equal(test(x, np.random.default_rng(0)), test(x, np.random.default_rng(1)))
    with pytest.raises(ValueError, match="modality"):
        build_transforms(NTU, 32, train=True, modality="angles")


def test_rotation_about_chosen_axes_only():
    x = _seq(20)
    about_y = RandomRotation(1.0, axes="y")(x, np.random.default_rng(3))
    np.testing.assert_allclose(about_y[1], x[1], atol=1e-6)  # the vertical axis is untouched
    assert not np.allclose(about_y, x)
    with pytest.raises(ValueError, match="xyz"):
        RandomRotation(0.3, axes="xw")


def _posed(seed=0, t=30):
    """A person standing upright facing -z, then moving: kinect20 joints, shape (3, T, 20, 1)."""
    layout = get_layout("kinect20")
    rng = np.random.default_rng(seed)
    x = rng.normal(scale=0.05, size=(3, t, 20, 1)).astype(np.float32)
    names = layout.joint_names
    for name, pos in {"hip_center": (0, 0, 0), "shoulder_center": (0, 0.5, 0),
                      "left_shoulder": (-0.2, 0.5, 0), "right_shoulder": (0.2, 0.5, 0)}.items():
        x[:, :, names.index(name), 0] += np.asarray(pos, np.float32)[:, None]
    return layout, x


def test_align_view_removes_the_camera_rotation():
    layout, x = _posed()
    align = AlignView(layout)
    rng = np.random.default_rng(0)
    rotated = RandomRotation(np.pi, axes="xyz")(x, rng)
    assert not np.allclose(rotated, x, atol=1e-2)
    np.testing.assert_allclose(align(rotated, rng), align(x, rng), atol=1e-4)
    aligned = align(rotated, rng)[:, 0, :, 0]
    spine = aligned[:, layout.spine[1]] - aligned[:, layout.spine[0]]
    shoulders = aligned[:, layout.shoulders[1]] - aligned[:, layout.shoulders[0]]
    assert spine[1] > 0 and abs(spine[0]) < 1e-5 and abs(spine[2]) < 1e-5
    assert shoulders[0] > 0 and abs(shoulders[2]) < 1e-5


def test_align_view_keeps_shape_distances_and_empty_sequences():
    layout, x = _posed(seed=1)
    out = AlignView(layout)(x, np.random.default_rng(0))
    assert out.shape == x.shape and out.dtype == np.float32
    bone = lambda a: np.linalg.norm(a[:, :, 6] - a[:, :, 5], axis=0)  # noqa: E731
    np.testing.assert_allclose(bone(out), bone(x), rtol=1e-5)
    empty = np.zeros_like(x)
    np.testing.assert_array_equal(AlignView(layout)(empty, np.random.default_rng(0)), empty)


def test_align_view_needs_the_layout_axes_and_3d():
    with pytest.raises(LayoutError, match="defines no 'spine' and 'shoulders'"):
        AlignView(get_layout("coco17"))
    with pytest.raises(ValueError, match="2D input"):
        build_transforms(get_layout("coco17"), 16, train=False, planar=True, align_view=True)
    steps = build_transforms(get_layout("ntu25"), 16, train=True, align_view=True).transforms
    assert isinstance(steps[0], AlignView)


def test_transforms_are_registered_with_their_config():
    assert TRANSFORMS.names() == ["align_view", "crop_resize", "shear", "rotation", "flip", "bone", "motion"]
    assert TRANSFORMS.build("rotation", {"theta": 0.5, "axes": "y"}) == RandomRotation(0.5, axes="y")
    assert TRANSFORMS.build("crop_resize", {"window": 16, "p_interval": [0.9]}) == ValidCropResize(16, (0.9,))
    pipeline = build_transforms(NTU, 16, train=True, flip=0.5, modality="bone", align_view=True, shear=0.3)
    assert all(type(t) is TRANSFORMS.get(name).cls for t, name in zip(pipeline.transforms, TRANSFORMS))
    assert repr(pipeline.transforms[1]) == "ValidCropResize(window=16, p_interval=(0.5, 1.0), min_crop=64)"


def test_shear_is_a_unit_diagonal_linear_map_that_keeps_absent_joints_zero():
    x = _seq(10)
    x[..., 1] = 0  # an absent second person
    rng = np.random.default_rng(3)
    out = RandomShear(amplitude=0.5)(x, rng)
    assert not out[..., 1].any()
    pts, sheared = x[..., 0].reshape(3, -1), out[..., 0].reshape(3, -1)
    matrix = np.linalg.lstsq(pts.T, sheared.T, rcond=None)[0].T  # recover the map from the points
    np.testing.assert_allclose(np.diag(matrix), 1.0, atol=1e-4)
    off = matrix[~np.eye(3, dtype=bool)]
    assert np.all(np.abs(off) <= 0.5) and np.abs(off).max() > 0.01


def test_planar_shear_keeps_the_score_channel():
    x = _seq(10)
    out = RandomShear(amplitude=0.5, planar=True)(x, np.random.default_rng(0))
    np.testing.assert_array_equal(out[2], x[2])
    assert not np.allclose(out[:2], x[:2])


def test_views_are_independent_reproducible_draws_of_the_pipeline():
    pipeline = build_transforms(NTU, 16, train=True, min_crop=8, shear=0.5)
    x = _seq(40)
    views = Views(pipeline, 2)
    a, b = views(x, np.random.default_rng([1, 2])), views(x, np.random.default_rng([1, 2]))
    assert a.shape == (2, 3, 16, 25, 2)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a[0], a[1])
    assert "shear" in repr(pipeline).lower()
