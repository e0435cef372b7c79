"""The Python API and pose-file reading: training preprocessing, clear shape errors, formats."""

import pickle
import warnings

import numpy as np
import pytest
import torch

import skelmae
from skelmae.config import DataConfig
from skelmae.data.formats import FormatOptionError
from skelmae.data.storage import SkeletonStore
from skelmae.engine.common import make_dataset
from skelmae.errors import CheckpointError, DataFormatError, SkelmaeError
from skelmae.inference import PoseSample, SkeletonModel, dataset_features, load, read_pose_file


@pytest.fixture(scope="module")
def classifier(tiny_checkpoints):
    return skelmae.load(tiny_checkpoints["classifier"])


@pytest.fixture(scope="module")
def store(tiny_synth):
    return SkeletonStore(tiny_synth)


def test_load_is_reexported_and_describes_the_model(classifier, tiny_checkpoints):
    assert isinstance(classifier, SkeletonModel) and classifier.kind == "classifier"
    assert classifier.window == 16 and classifier.layout.name == "ntu25" and len(classifier.classes) == 14
    assert "25 joints" in repr(classifier) and "14 classes" in repr(classifier)
    assert not classifier.network.training


def test_predict_uses_the_training_test_pipeline(classifier, store):
    """Raw stored sequences give the same logits as the engine's own evaluation dataset."""
    dataset = make_dataset(store, DataConfig(window=16, min_crop=8), "test", train=False)
    batch = torch.stack([dataset[k][0] for k in range(5)])
    with torch.no_grad():
        expected = torch.softmax(classifier.classifier(batch), dim=1).numpy()
    raw = [store.sequence(i) for i in dataset.indices[:5]]
    assert np.allclose(classifier.probabilities(raw), expected, atol=1e-6)
    assert np.allclose(classifier.probabilities(batch), expected, atol=1e-6)
    predictions = classifier.predict(raw)
    assert [p.index for p in predictions] == expected.argmax(1).tolist()
    top = predictions[0].top(3)
    assert [name for name, _ in top][0] == predictions[0].label and top[0][1] >= top[1][1] >= top[2][1]
    assert predictions[0].probabilities.sum() == pytest.approx(1.0, abs=1e-5)
    as_dict = predictions[0].to_dict(2)
    assert as_dict["label"] == predictions[0].label and len(as_dict["top"]) == 2


def test_missing_persons_are_zero_padded(classifier, store):
    one_person = store.sequence(0)[:, 0]
    padded = np.concatenate([one_person[:, None], np.zeros_like(one_person[:, None])], axis=1)
    assert np.allclose(classifier.encode(one_person), classifier.encode(padded))
    assert np.allclose(classifier.encode(one_person[:, None]), classifier.encode(padded))
    assert classifier.encode([one_person, padded]).shape == (2, 32)


@pytest.mark.parametrize(
    "shape, expected",
    [
        ((30, 20, 3), "25 joints"),
        ((30, 25, 2), "channels \\(x, y, z\\)"),
        ((30, 3, 25, 3), "at most 2 persons"),
        ((0, 25, 3), "25 joints"),
        ((30, 25), "an array \\(T, 25, 3\\)"),
    ],
)
def test_wrong_shapes_name_what_the_checkpoint_expects(classifier, shape, expected):
    with pytest.raises(DataFormatError, match=expected) as info:
        classifier.predict(np.random.default_rng(0).normal(size=shape).astype(np.float32))  # not ones: centring makes them 0
    assert str(shape) in str(info.value)


def test_empty_person_slots_beyond_the_model_are_dropped(classifier, store):
    seq = store.sequence(2)
    three = np.concatenate([seq, np.zeros_like(seq[:, :1])], axis=1)
    assert np.allclose(classifier.encode(three), classifier.encode(seq))
    three[:, 2] = seq[:, 0]
    with pytest.raises(DataFormatError, match="at most 2 persons"):
        classifier.encode(three)


def test_non_finite_input_and_bad_batches(classifier):
    seq = np.zeros((10, 25, 3), np.float32)
    seq[3, 4, 0] = np.nan
    with pytest.raises(DataFormatError, match="NaN"):
        classifier.predict(seq)
    with pytest.raises(SkelmaeError, match=r"\(N, 3, 16, 25, 2\)"):
        classifier.predict(torch.zeros(2, 3, 20, 25, 2))


def test_mae_checkpoint_encodes_but_does_not_classify(tiny_checkpoints, classifier, store):
    mae = load(tiny_checkpoints["mae"])
    seq = store.sequence(3)
    assert np.allclose(mae.encode(seq), classifier.encode(seq), atol=1e-6)  # the probe froze this encoder
    with pytest.raises(SkelmaeError, match="no classifier head"):
        mae.predict(seq)


def test_dataset_features_match_encode(classifier, store):
    indices = store.split("test")[:6]
    features = dataset_features(classifier, store, indices, batch_size=4, progress=False)
    assert np.allclose(features, classifier.encode([store.sequence(i) for i in indices]), atol=1e-6)


def test_foreign_or_incomplete_checkpoints(tiny_checkpoints, tmp_path):
    from skelmae.engine.checkpoint import load_checkpoint

    state = load_checkpoint(tiny_checkpoints["classifier"])
    del state["head"]
    with pytest.raises(CheckpointError, match="lacks field"):
        SkeletonModel(state)
    with pytest.raises(CheckpointError, match="not found"):
        load(tmp_path / "none.pt")


def test_view_alignment_is_read_from_the_checkpoint(tiny_checkpoints, store):
    """A model trained with data.align_view aligns new input too: a turned camera changes nothing."""
    from skelmae.data.transforms import AlignView, RandomRotation
    from skelmae.engine.checkpoint import load_checkpoint

    state = load_checkpoint(tiny_checkpoints["classifier"])
    state["data"]["align_view"] = True
    model = SkeletonModel(state)
    assert isinstance(model.transform.transforms[0], AlignView)
    seq = store.sequence(2)  # (T, M, V, C)
    turned = RandomRotation(1.0)(np.transpose(seq, (3, 0, 2, 1)), np.random.default_rng(1))
    turned = np.ascontiguousarray(np.transpose(turned, (1, 3, 2, 0)))
    assert np.allclose(model.probabilities(turned), model.probabilities(seq), atol=1e-4)


def test_npy_files_and_format_choice(classifier, store, tmp_path):
    np.save(tmp_path / "clip.npy", store.sequence(5))
    [sample] = read_pose_file(tmp_path / "clip.npy")
    assert sample.name == "clip" and sample.layout is None and sample.sequence.shape == store.sequence(5).shape
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataFormatError, match="objects.npy: not a plain numeric"):
        read_pose_file(tmp_path / "objects.npy")
    (tmp_path / "clip.pkl").write_bytes(pickle.dumps({"keypoint": np.zeros((1, 5, 25, 3))}))
    with pytest.raises(DataFormatError, match="--format pyskl"):
        read_pose_file(tmp_path / "clip.pkl")
    (tmp_path / "clip.dat").write_text("1,2\n")
    with pytest.raises(DataFormatError, match="unknown pose file type '.dat'"):
        read_pose_file(tmp_path / "clip.dat")
    (tmp_path / "clip.csv").write_text("1,2\n")
    with pytest.raises(FormatOptionError, match="give --layout"):  # a table needs its layout (a checkpoint passes its own)
        read_pose_file(tmp_path / "clip.csv")
    with pytest.raises(DataFormatError, match="file not found"):
        read_pose_file(tmp_path / "missing.npy")
    with pytest.raises(SkelmaeError, match="unknown pose format"):
        read_pose_file(tmp_path / "clip.npy", fmt="c3d")


def test_pickle_that_is_not_annotations(tmp_path):
    (tmp_path / "list.pkl").write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(DataFormatError, match="not PYSKL annotations"):
        read_pose_file(tmp_path / "list.pkl", fmt="pyskl")


class _RunsCodeWhenLoaded:
    def __reduce__(self):
        return (print, ("unpickled code ran",))


def test_pose_pickles_never_run_code(tmp_path, capsys):
    (tmp_path / "evil.pkl").write_bytes(pickle.dumps({"annotations": [_RunsCodeWhenLoaded()]}))
    with pytest.raises(DataFormatError, match="references builtins.print"):
        read_pose_file(tmp_path / "evil.pkl", fmt="pyskl")
    assert "unpickled code ran" not in capsys.readouterr().out


# -- with the dataset readers of skelmae.data.formats --------------------------------------
def test_pyskl_annotations_predict_like_the_array(classifier, store, tmp_path):
    seq = store.sequence(7)  # (T, M, V, C)
    ann = {"frame_dir": "clip7", "label": 0, "total_frames": len(seq), "keypoint": seq.transpose(1, 0, 2, 3).copy()}
    (tmp_path / "one.pkl").write_bytes(pickle.dumps({"split": {"test": ["clip7"]}, "annotations": [ann]}))
    [sample] = read_pose_file(tmp_path / "one.pkl", fmt="pyskl")
    assert sample.name == "clip7" and sample.layout == "ntu25"
    assert np.allclose(classifier.probabilities(sample.sequence), classifier.probabilities(seq), atol=1e-6)


def test_real_pyskl_2d_pickle_is_rejected_by_a_3d_model(classifier, shared_data):
    samples = read_pose_file(shared_data / "pyskl_format_custom_hrnet" / "ntu60_hrnet.pkl", fmt="pyskl")
    assert len(samples) == 486 and samples[0].layout == "coco17"
    with pytest.raises(DataFormatError, match="holds coco17 skeletons.*layout ntu25 with 25 joints"):
        classifier.check_layout(samples[0].layout, "ntu60_hrnet.pkl")
    with pytest.raises(DataFormatError, match="ntu60_hrnet.pkl, annotation 0.keypoint: has 17 joints .expected 25"):
        classifier.read_pose_file(shared_data / "pyskl_format_custom_hrnet" / "ntu60_hrnet.pkl", fmt="pyskl")


def test_ntu_files_follow_the_checkpoints_second_actor_rule(tiny_checkpoints, shared_data):
    from skelmae.engine.checkpoint import load_checkpoint

    path = shared_data / "ntu_rgbd_samples" / "raw_skeletons" / "S001C001P001R001A001.skeleton"  # one person
    state = load_checkpoint(tiny_checkpoints["classifier"])
    assert state["data"]["preparation"]["generator"] == "skelmae.data.synthetic"  # the dataset's import record
    [zeros] = SkeletonModel(state).read_pose_file(path)
    state["data"]["preparation"] = {"second_actor": "duplicate"}
    [duplicate] = SkeletonModel(state).read_pose_file(path)
    assert not zeros.sequence[:, 1].any() and np.array_equal(duplicate.sequence[:, 1], duplicate.sequence[:, 0])


def test_real_ntu_skeleton_file(classifier, shared_data, tmp_path):
    path = shared_data / "ntu_rgbd_samples" / "raw_skeletons" / "S001C001P001R001A050.skeleton"
    [sample] = read_pose_file(path)
    assert sample.name == "S001C001P001R001A050" and sample.layout == "ntu25"
    assert sample.sequence.shape[1:] == (2, 25, 3) and len(sample.sequence) > 0
    np.save(tmp_path / "same.npy", sample.sequence)
    [again] = read_pose_file(tmp_path / "same.npy")
    assert np.allclose(classifier.probabilities(sample.sequence), classifier.probabilities(again.sequence))


def test_real_nw_ucla_file_is_rejected_by_an_ntu_model(classifier, shared_data):
    [sample] = read_pose_file(shared_data / "nw_ucla" / "all_sqe" / "a01_s01_e00_v01.json")
    assert sample.layout == "kinect20" and sample.sequence.shape[2:] == (20, 3)
    with pytest.raises(DataFormatError, match="kinect20"):
        classifier.check_layout(sample.layout, "a01_s01_e00_v01.json")
    with pytest.raises(DataFormatError, match="25 joints"):
        classifier.predict(sample.sequence)


# -- the dataset's recorded preprocessing -------------------------------------------------
def _centring_model(tiny_checkpoints, record=None):
    """The tiny classifier, its checkpoint saying that the data were centred like NTU (or ``record``)."""
    from skelmae.data.layouts import get_layout
    from skelmae.data.preprocessing import Preprocessing
    from skelmae.engine.checkpoint import load_checkpoint

    state = load_checkpoint(tiny_checkpoints["classifier"])
    assert Preprocessing.from_dict(state["data"]["preprocessing"]).known  # the checkpoint carries its dataset's record
    record = record or Preprocessing.centred(get_layout("ntu25"), persons=2)
    state["data"]["preprocessing"] = record.to_dict()
    return SkeletonModel(state)


def test_a_raw_uncentred_clip_predicts_like_the_stored_one(tiny_checkpoints, classifier, store, tmp_path):
    from skelmae.data.preprocessing import Preprocessing
    from skelmae.inference import predict_files

    model = _centring_model(tiny_checkpoints)
    stored = store.sequence(4)
    assert not stored[0, 0, model.layout.center].any()  # the synthetic data are centred on the first frame
    raw = stored.copy()
    raw[np.any(raw != 0, axis=(2, 3))] += np.float32([0.8, -1.2, 3.1])  # back into camera coordinates
    np.save(tmp_path / "stored.npy", stored)
    np.save(tmp_path / "raw.npy", raw)
    on_stored, on_raw = predict_files(model, [tmp_path / "stored.npy", tmp_path / "raw.npy"], top_k=14)
    assert [t["class"] for t in on_stored["top"]] == [t["class"] for t in on_raw["top"]]
    assert np.allclose([t["probability"] for t in on_stored["top"]], [t["probability"] for t in on_raw["top"]], atol=1e-5)
    assert np.allclose(model.probabilities(raw), classifier.probabilities(stored), atol=1e-5)
    assert np.allclose(model.encode(raw[:, :1]), model.encode(stored[:, :1]), atol=1e-5)
    uncentred = _centring_model(tiny_checkpoints, Preprocessing())
    assert not np.allclose(uncentred.encode(raw), uncentred.encode(stored), atol=1e-3)  # without the record it differs


def test_real_ntu_camera_coordinates_predict_like_the_skeleton_file(tiny_checkpoints, shared_data, tmp_path):
    from skelmae.data.formats import ntu
    from skelmae.inference import predict_files

    folder = shared_data / "ntu_rgbd_samples" / "raw_skeletons"
    record = ntu.Ntu60(ntu.NtuOptions()).plan([folder]).preprocessing
    model = _centring_model(tiny_checkpoints, record)
    path = folder / "S001C001P001R001A050.skeleton"
    camera, _ = ntu.assign_actors(ntu.read_skeleton(path))
    np.save(tmp_path / "camera.npy", camera)
    from_file, from_array = predict_files(model, [path, tmp_path / "camera.npy"], top_k=3)
    assert np.allclose([t["probability"] for t in from_file["top"]], [t["probability"] for t in from_array["top"]], atol=1e-5)


class _NamedJoints:
    """A pose format the tests register: clips of ``value`` whose file names its joints (reversed with ``reverse``)."""

    suffixes = (".joints",)
    pose_file = "named-joint .joints"

    def __init__(self, options):
        self.options = options

    def read(self, path):
        from skelmae.data.layouts import get_layout

        names = get_layout("ntu25").joint_names
        sequence = np.full((6, 25, 3), self.options.value, np.float32)
        return [PoseSample(path.stem, sequence, joint_names=names[::-1] if self.options.reverse else names)]


@pytest.fixture()
def named_joints_format(monkeypatch):
    from dataclasses import dataclass, field

    from skelmae.data.formats import FORMATS, DatasetFormat

    @dataclass(frozen=True)
    class Options:
        value: float = field(default=0.0, metadata={"help": "every coordinate"})
        reverse: bool = field(default=False, metadata={"help": "name the joints in reverse order"})

    monkeypatch.setattr(FORMATS, "_entries", dict(FORMATS._entries))  # registered for this test only
    FORMATS.register("named-joints", config=Options)(type("NamedJoints", (_NamedJoints, DatasetFormat), {}))


def test_joint_names_other_than_the_layouts_are_warned_about(tiny_checkpoints, named_joints_format, tmp_path):
    from skelmae.inference import predict_files

    model = _centring_model(tiny_checkpoints)
    (tmp_path / "clip.joints").write_text("")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.read_pose_file(tmp_path / "clip.joints")  # the layout's own names: no warning
    model.data["preparation"] = {"format": "named-joints", "options": {"value": 2.0, "reverse": True}}
    with pytest.warns(UserWarning, match="clip.joints: the file names joints other than the checkpoint's layout ntu25 "
                                         r"\(joint 0 is 'right_thumb', not 'spine_base'\)"):
        [result] = predict_files(model, [tmp_path / "clip.joints"])
    assert "right_thumb" in result["warnings"][0] and "top" in result


def test_recorded_options_apply_only_to_the_format_that_prepared_the_dataset(tiny_checkpoints, named_joints_format, tmp_path):
    model = _centring_model(tiny_checkpoints)
    (tmp_path / "clip.joints").write_text("")
    model.data["preparation"] = {"format": "named-joints", "options": {"value": 2.0}}
    [sample] = model.read_pose_file(tmp_path / "clip.joints")
    assert (sample.sequence == 2.0).all()
    model.data["preparation"] = {"format": "npy", "options": {"value": 2.0}}
    [sample] = model.read_pose_file(tmp_path / "clip.joints")
    assert not sample.sequence.any()


def test_a_checkpoint_without_a_record_takes_npy_clips_as_given_and_says_so(tiny_checkpoints, store, tmp_path):
    from skelmae.engine.checkpoint import load_checkpoint

    state = load_checkpoint(tiny_checkpoints["classifier"])
    del state["data"]["preprocessing"]  # written before the record existed
    model = SkeletonModel(state)
    assert not model.preprocessing.known
    np.save(tmp_path / "clip.npy", store.sequence(1))
    with pytest.warns(UserWarning, match="does not know how its dataset's coordinates were preprocessed"):
        [sample] = model.read_pose_file(tmp_path / "clip.npy")
    assert np.allclose(model.probabilities(sample.sequence), model.probabilities(store.sequence(1)))
