"""Skeleton drawing: files written, camera and image orientation, colours, masks."""

import numpy as np
import pytest
from PIL import Image

from skelmae.data.layouts import get_layout
from skelmae.data.storage import SkeletonStore
from skelmae.errors import SkelmaeError
from skelmae.viz.render import (
    GREY, Camera, Panel, SequenceRenderer, contact_sheet, person_colors, save_rendering, sheet_indices,
)

NTU = get_layout("ntu25")


@pytest.fixture(scope="module")
def two_person(tiny_synth):
    """A stored two-person sequence (T, 2, 25, 3) of the synthetic set."""
    store = SkeletonStore(tiny_synth)
    i = next(i for i in range(len(store)) if store.classes[store.labels[i]] == "shake hands")
    return store.sequence(i)


def pixel(image, position):
    col, row = np.round(position).astype(int)
    return image[row, col].astype(float) / 255


def test_gif_and_contact_sheet_are_written(two_person, tmp_path):
    renderer = SequenceRenderer([Panel("input", two_person)], NTU, ["x", "y", "z"], title="shake hands")
    written = save_rendering(renderer, tmp_path / "clip.gif", fps=10, stride=4, sheet_frames=4, progress=False)
    assert written == [tmp_path / "clip.gif", tmp_path / "clip.png"]
    frames = len(range(0, len(two_person), 4))
    with Image.open(tmp_path / "clip.gif") as gif:
        assert gif.n_frames == frames and gif.info["duration"] == 100
        assert gif.size == renderer.frame(0).shape[1::-1]
    with Image.open(tmp_path / "clip.png") as sheet:
        h, w = renderer.frame(0).shape[:2]
        assert sheet.size[0] >= w and sheet.size[0] * sheet.size[1] >= 4 * w * h
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind


def test_mp4_holds_every_frame(two_person, tmp_path):
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    renderer = SequenceRenderer([Panel("input", two_person[:12])], NTU, ["x", "y", "z"])
    written = save_rendering(renderer, tmp_path / "clip.mp4", sheet_frames=0, progress=False)
    assert written == [tmp_path / "clip.mp4"]
    reader = imageio_ffmpeg.read_frames(str(tmp_path / "clip.mp4"))
    meta = next(reader)
    assert sum(1 for _ in reader) == 12 and tuple(meta["size"]) == renderer.frame(0).shape[1::-1]


def test_png_output_is_the_contact_sheet_only(two_person, tmp_path):
    renderer = SequenceRenderer([Panel("input", two_person)], NTU, ["x", "y", "z"])
    assert save_rendering(renderer, tmp_path / "sheet.png", sheet_frames=3, progress=False) == [tmp_path / "sheet.png"]
    with pytest.raises(SkelmaeError, match="expected .gif, .mp4 or .png"):
        save_rendering(renderer, tmp_path / "clip.avi", progress=False)


def test_frame_differs_exactly_where_the_mask_differs(two_person):
    seq = two_person[:8]
    rng = np.random.default_rng(0)
    tokens = rng.random((2, 2, 25)) < 0.5  # (segments, persons, joints), segment = 4 frames
    changed = tokens.copy()
    changed[1, 0, 11] = not changed[1, 0, 11]  # one token: segment 1, person 0, right hand
    greyed = [np.repeat(t, 4, axis=0) for t in (tokens, changed)]
    a, b = (SequenceRenderer([Panel("masked", seq, greyed=g)], NTU, ["x", "y", "z"]) for g in greyed)
    for t in range(4):
        assert np.array_equal(a.frame(t), b.frame(t)), t
    for t in range(4, 8):
        diff = np.abs(a.frame(t).astype(int) - b.frame(t).astype(int)).sum(axis=2) > 0
        rows, cols = np.nonzero(diff)
        hand = a.pixel_positions(t)[0, 11]
        assert diff.any() and np.hypot(cols - hand[0], rows - hand[1]).min() < 3, t


def test_masked_joints_are_grey_and_persons_have_their_own_colours(two_person):
    greyed = np.zeros(two_person.shape[:3], bool)
    greyed[:, 0, 3] = True  # the head of person 0
    renderer = SequenceRenderer([Panel("masked", two_person, greyed=greyed)], NTU, ["x", "y", "z"])
    image = renderer.frame(0)
    pos = renderer.pixel_positions(0)
    colors = person_colors(2)[:, :3]
    assert np.allclose(pixel(image, pos[0, 3]), GREY[:3], atol=0.02)
    for person in (0, 1):
        joint = 0  # spine base: drawn in the person's colour
        assert np.allclose(pixel(image, pos[person, joint]), colors[person], atol=0.02), person
    assert not np.allclose(colors[0], colors[1], atol=0.1)


def test_absent_person_is_not_drawn(two_person):
    seq = two_person.copy()
    seq[:, 1] = 0
    image = SequenceRenderer([Panel("one", seq)], NTU, ["x", "y", "z"]).frame(0).astype(float) / 255
    orange = person_colors(2)[1, :3]
    assert not (np.abs(image - orange).sum(axis=2) < 0.05).any()


def test_3d_camera_keeps_y_up_and_is_fixed(two_person):
    renderer = SequenceRenderer([Panel("input", two_person)], NTU, ["x", "y", "z"], camera=Camera(0, 0))
    pos = renderer.pixel_positions(0)
    head, foot = NTU.joint_names.index("head"), NTU.joint_names.index("left_foot")
    assert pos[0, head, 1] < pos[0, foot, 1]  # higher y is higher in the picture
    xlim = renderer.figure.axes[0].get_xlim()
    renderer.frame(len(two_person) - 1)
    assert renderer.figure.axes[0].get_xlim() == xlim  # one camera for the whole sequence
    at_front = SequenceRenderer([Panel("input", two_person)], NTU, ["x", "y", "z"], camera=Camera(0, 0))
    x_left, x_right = two_person[0, 0, 4, 0], two_person[0, 0, 8, 0]  # shoulders
    cols = at_front.pixel_positions(0)[0, [4, 8], 0]
    assert (cols[0] < cols[1]) == (x_left < x_right)  # Kinect view: x grows to the right


def test_2d_is_drawn_in_image_orientation_and_low_scores_fade():
    coco = get_layout("coco17")
    seq = np.zeros((2, 1, 17, 3), np.float32)
    seq[..., 0] = np.linspace(300, 340, 17)
    seq[..., 1] = np.linspace(100, 400, 17)  # image y: nose at the top, ankles at the bottom
    seq[:, 0, 9, :2] = (200, 250)  # wrists held out to the sides, away from other bones
    seq[:, 0, 10, :2] = (440, 250)
    seq[..., 2] = 1.0
    seq[:, 0, 9, 2] = 0.0  # left wrist undetected
    renderer = SequenceRenderer([Panel("2d", seq)], coco, ["x", "y", "score"])
    image, pos = renderer.frame(0), renderer.pixel_positions(0)
    assert pos[0, 0, 1] < pos[0, 16, 1]
    assert pixel(image, pos[0, 9]).mean() > pixel(image, pos[0, 10]).mean() + 0.3  # faded = lighter


def test_user_layout_bones_are_drawn(tmp_path):
    chain = get_layout({"name": "chain", "joints": ["a", "b", "c"], "parents": [None, "a", "b"], "groups": {"all": ["a", "b", "c"]}})
    seq = np.zeros((3, 1, 3, 3), np.float32)
    seq[:, 0, :, 1] = [0.0, 1.0, 2.0]
    seq[:, 0, :, 0] = 0.1
    renderer = SequenceRenderer([Panel("chain", seq)], chain, ["x", "y", "z"])
    renderer.frame(0)
    bones = renderer.figure.axes[0].collections[1]
    assert len(bones.get_segments()) == len(chain.bones) == 2


def test_shape_mismatch_is_a_clear_error(two_person):
    with pytest.raises(SkelmaeError, match="layout kinect20 .20 joints."):
        SequenceRenderer([Panel("x", two_person)], get_layout("kinect20"), ["x", "y", "z"])
    with pytest.raises(SkelmaeError, match="no 'y' channel"):
        SequenceRenderer([Panel("x", two_person)], NTU, ["x", "w", "z"])


def test_contact_sheet_and_frame_choice():
    images = [np.full((10, 20, 3), k, np.uint8) for k in range(5)]
    sheet = contact_sheet(images, columns=2, gap=4)
    assert sheet.shape == (3 * 10 + 2 * 4, 2 * 20 + 4, 3)
    assert (sheet[14:24, 24:44] == 3).all() and (sheet[28:38, 24:44] == 255).all()
    assert sheet_indices(100, 5) == [0, 25, 50, 74, 99] and sheet_indices(3, 8) == [0, 1, 2]
