"""The preprocessing record: schema round trip, what apply does, idempotence, older manifests."""

import json

import numpy as np
import pytest

from skelmae.data.formats import ntu, pyskl
from skelmae.data.formats.common import centre_on_first_frame
from skelmae.data.layouts import get_layout
from skelmae.data.preprocessing import UNKNOWN, Preprocessing, PreprocessingError
from skelmae.data.storage import DatasetWriter, SkeletonStore
from skelmae.errors import DataFormatError

NTU25 = get_layout("ntu25")
NTU = Preprocessing.centred(NTU25, persons=2, person_order="motion", second_actor="zeros", note="SGN")
PYSKL_2D = Preprocessing(normalise_2d="image_size", image_size=(1080, 1920), persons=2)


def _clip(frames=12, persons=2, joints=25, seed=0, offset=(0.0, 0.0, 0.0)):
    rng = np.random.default_rng(seed)
    clip = rng.normal(size=(frames, persons, joints, 3)).astype(np.float32) + np.float32(offset)
    return clip


def _pixel_clip(seed=0):
    """(T, 2, 17, 3) x, y in pixels of a 1920x1080 image and a score; person 2 absent, one undetected keypoint."""
    rng = np.random.default_rng(seed)
    clip = np.zeros((10, 2, 17, 3), np.float32)
    clip[:, 0, :, 0] = rng.uniform(600, 1300, (10, 17))
    clip[:, 0, :, 1] = rng.uniform(200, 1000, (10, 17))
    clip[:, 0, :, 2] = rng.uniform(0.3, 1.0, (10, 17))
    clip[4, 0, 3] = 0
    return clip


@pytest.mark.parametrize("record", [Preprocessing(), NTU, PYSKL_2D, UNKNOWN,
                                    Preprocessing(persons=1, second_actor="duplicate")])
def test_the_record_survives_json(record):
    again = Preprocessing.from_dict(json.loads(json.dumps(record.to_dict())))
    assert again == record and isinstance(again.describe(), str) and "\n" not in again.describe()


def test_words_and_bad_records():
    assert NTU.describe().startswith("centred on spine_mid of person 1") and "most moving first" in NTU.describe()
    assert "1920x1080 px" in PYSKL_2D.describe() and Preprocessing().describe() == "coordinates as read"
    assert UNKNOWN.describe().startswith("unknown") and Preprocessing.from_dict(None) is UNKNOWN
    with pytest.raises(PreprocessingError, match="centre must be one of"):
        Preprocessing.from_dict({"centre": "mean"})
    with pytest.raises(PreprocessingError, match="unknown preprocessing key"):
        Preprocessing.from_dict({"rotation": "none"})
    with pytest.raises(PreprocessingError, match="needs centre_joint"):
        Preprocessing(centre="first_frame")
    with pytest.raises(PreprocessingError, match="image_size"):
        Preprocessing(image_size=(0, 10))


def test_centring_is_the_formats_centring_and_idempotent():
    raw = _clip(offset=(1.5, -0.2, 3.0))
    raw[:3, 1] = 0  # the second person appears later
    stored = NTU.apply(raw)
    np.testing.assert_array_equal(stored, centre_on_first_frame(raw, NTU25.center))
    assert not stored[:3, 1].any() and not stored[0, 0, NTU25.center].any()
    np.testing.assert_array_equal(NTU.apply(stored), stored)
    assert stored.dtype == np.float32 and raw[0, 0, 0, 0] != stored[0, 0, 0, 0]  # the input is not changed in place


def test_apply_matches_what_ntu_prepare_stores(shared_data):
    path = shared_data / "ntu_rgbd_samples" / "raw_skeletons" / "S001C001P001R001A001.skeleton"
    camera, _ = ntu.assign_actors(ntu.read_skeleton(path))  # actors assigned, not centred
    for second_actor in ntu.SECOND_ACTOR:
        record = Preprocessing.centred(NTU25, persons=2, person_order="motion", second_actor=second_actor)
        np.testing.assert_allclose(record.apply(camera), ntu.load_sequence(path, second_actor), atol=1e-6)
        np.testing.assert_array_equal(record.apply(record.apply(camera)), record.apply(camera))


def test_persons_are_padded_or_chosen_by_the_recorded_rule():
    still, lively = np.full((8, 25, 3), 0.5, np.float32), _clip(8, 1, seed=1)[:, 0]
    three = np.stack([still, lively, lively * 2], axis=1)
    np.testing.assert_array_equal(Preprocessing(persons=2).apply(three), three[:, :2])
    np.testing.assert_array_equal(Preprocessing(persons=2, person_order="motion").apply(three), three[:, [2, 1]])
    padded = Preprocessing(persons=2).apply(three[:, :1])
    assert padded.shape == (8, 2, 25, 3) and not padded[:, 1].any()
    copied = Preprocessing(persons=2, second_actor="duplicate").apply(three[:, :1])
    np.testing.assert_array_equal(copied[:, 1], copied[:, 0])


def test_image_normalisation_matches_pyskl_and_is_not_applied_twice():
    pixels = _pixel_clip()
    ann = {"keypoint": pixels[..., :2].transpose(1, 0, 2, 3).copy(), "keypoint_score": pixels[..., 2].transpose(1, 0, 2),
           "img_shape": (1080, 1920)}
    stored, _ = pyskl.annotation_to_sequence(ann, num_persons=2)
    np.testing.assert_array_equal(PYSKL_2D.apply(pixels), stored)
    np.testing.assert_array_equal(PYSKL_2D.apply(stored), stored)  # already within [-1.5, 1.5]: left alone
    assert not stored[4, 0, 3].any() and not stored[:, 1].any()  # undetected and absent stay 0


def test_a_clip_of_its_own_image_size_needs_that_size():
    per_clip = Preprocessing(normalise_2d="image_size", persons=2)
    with pytest.raises(PreprocessingError, match="own image size"):
        per_clip.apply(_pixel_clip())


def test_image_fractions_are_normalised_once():
    fractions = Preprocessing(normalise_2d="image_size", image_size=(1, 1), persons=1)
    raw = np.random.default_rng(0).uniform(0.2, 0.8, (5, 1, 33, 3)).astype(np.float32)  # MediaPipe's x, y in [0, 1]
    stored = fractions.apply(raw)
    np.testing.assert_allclose(stored[..., :2], 2 * raw[..., :2] - 1, atol=1e-6)
    np.testing.assert_array_equal(fractions.apply(stored), stored)


def test_unknown_and_none_change_nothing_but_the_dtype():
    raw = _clip(offset=(4, 4, 4)).astype(np.float64)
    for record in (UNKNOWN, Preprocessing()):
        np.testing.assert_array_equal(record.apply(raw), raw.astype(np.float32))
    with pytest.raises(PreprocessingError, match=r"\(T, M, V, C\)"):
        NTU.apply(raw[:, 0])
    with pytest.raises(PreprocessingError, match="spine_mid .index 1. is not among 1 joints"):
        NTU.apply(raw[:, :, :1])


def _dataset(out, **writer):
    with DatasetWriter(out, "ntu25", ["x", "y", "z"], 2, ["a"], **writer) as w:
        w.add(_clip(), 0, "s0")
        w.add_split("train", [0])
    return out


def test_the_manifest_records_it_and_older_manifests_read_as_unknown(tmp_path):
    assert SkeletonStore(_dataset(tmp_path / "plain")).preprocessing == Preprocessing()  # nothing passed: none
    assert SkeletonStore(_dataset(tmp_path / "ntu", preprocessing=NTU)).preprocessing == NTU
    manifest_path = tmp_path / "ntu" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    assert manifest["preprocessing"]["centre_joint"] == "spine_mid" and manifest["preprocessing"]["persons"] == 2
    del manifest["preprocessing"]
    manifest_path.write_text(json.dumps(manifest))
    assert SkeletonStore(tmp_path / "ntu").preprocessing is UNKNOWN
    manifest["preprocessing"] = {"centre": "middle"}
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(DataFormatError, match="field 'preprocessing': preprocessing centre must be one of"):
        SkeletonStore(tmp_path / "ntu")
