"""The dataset-format registry: data prepare, read_pose_file and the command line take their formats from it."""

from dataclasses import dataclass, field

import numpy as np
import pytest
import typer

from skelmae.cli import app
from skelmae.data.formats import (
    FORMATS, DatasetFormat, FormatOptionError, PoseSample, option_help, option_names, preparable_formats,
    read_pose_file, readable_formats,
)
from skelmae.data.formats.base import ImportPlan, Loaded, Sample
from skelmae.data.prepare import prepare
from skelmae.data.storage import SkeletonStore
from skelmae.errors import DataFormatError


@dataclass(frozen=True)
class ConstantOptions:
    value: float = field(default=1.0, metadata={"help": "the value of every coordinate"})


def _constant_load(name: str, value: float) -> Loaded:
    return Loaded([Sample(np.full((4, 1, 20, 3), value, np.float32), 0, name, {}, ("train",))])


class Constant(DatasetFormat):
    """Files whose clip is a constant (a format the tests register)."""

    suffixes = (".const",)
    pose_file = "constant .const"

    def read(self, path):
        return [PoseSample(path.stem, np.full((4, 20, 3), self.options.value, np.float32), "kinect20")]

    def plan(self, raw):
        names = sorted(p.stem for p in raw[0].glob("*.const"))
        return ImportPlan(
            format="constant", name="constant", raw=str(raw[0]), layout="kinect20", channels=["x", "y", "z"],
            num_persons=1, classes=["only"], split_names=["train"], source={}, items=names,
            load=lambda name: _constant_load(name, self.options.value), total=len(names), parallel=False,
        )


@pytest.fixture()
def constant_format(monkeypatch):
    monkeypatch.setattr(FORMATS, "_entries", dict(FORMATS._entries))  # registered for this test only
    FORMATS.register("constant", config=ConstantOptions)(Constant)


def test_listings_come_from_the_registry():
    estimators = ["openpose", "mmpose", "mediapipe", "alphapose"]
    assert preparable_formats() == ["ntu60", "ntu120", "pku-mmd", "nw-ucla", "pyskl", "ctrgcn-npz", "files", *estimators]
    assert readable_formats() == ["npy", "ntu60", "ntu120", "nw-ucla", "pyskl", "files", *estimators]
    assert set(preparable_formats()) | set(readable_formats()) == set(FORMATS)
    assert option_names("ntu60") == option_names("ntu120") == ["second_actor"] and option_names("nw-ucla") == []


@pytest.mark.parametrize("name", ["ntu60", "ntu120", "pku-mmd", "nw-ucla", "pyskl", "ctrgcn-npz"])
def test_prepare_accepts_every_preparable_format(tmp_path, name):
    with pytest.raises(DataFormatError, match="nowhere: does not exist"):
        prepare(name, tmp_path / "nowhere", tmp_path / "out")


@pytest.mark.parametrize("name", ["npy", "ntu60", "ntu120", "nw-ucla", "pyskl"])
def test_read_pose_file_accepts_every_readable_format(tmp_path, name):
    with pytest.raises(DataFormatError, match="file not found"):
        read_pose_file(tmp_path / "missing", fmt=name)


def test_unknown_formats_and_options_are_clear_errors(tmp_path):
    with pytest.raises(FormatOptionError, match=r"unknown dataset format 'npy'; expected one of \['ntu60', "):
        prepare("npy", tmp_path, tmp_path / "out")  # a pose-file format, but nothing to prepare from
    with pytest.raises(FormatOptionError, match="unknown pose format 'pku-mmd'; expected one of auto, npy, ntu60"):
        read_pose_file(tmp_path / "x.txt", fmt="pku-mmd")
    with pytest.raises(FormatOptionError, match=r"option 'center' does not apply to format 'pyskl' \(it takes \['class_names', "):
        prepare("pyskl", tmp_path, tmp_path / "out", center=True)
    with pytest.raises(FormatOptionError, match="label_base must be auto, 0 or 1, got '2'"):
        prepare("pyskl", tmp_path, tmp_path / "out", label_base="2")
    with pytest.raises(FormatOptionError, match="max_persons must be at least 1"):
        prepare("pyskl", tmp_path, tmp_path / "out", max_persons=0)
    with pytest.raises(FormatOptionError, match="no pose file format takes option\\(s\\) \\['protocol'\\]"):
        read_pose_file(tmp_path / "x.npy", protocol="xsub")
    with pytest.raises(FormatOptionError, match="no dataset format takes option 'speed'"):
        option_help("speed")


def test_a_registered_format_is_prepared_and_read_without_other_edits(constant_format, tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    for name in ("a", "b"):
        (raw / f"{name}.const").write_text("")
    assert "constant" in preparable_formats() and "constant" in readable_formats()
    store = SkeletonStore(prepare("constant", raw, tmp_path / "ds", progress=False, value=2.0).out)
    assert store.names == ["a", "b"] and (store.sequence(1) == 2.0).all()
    [sample] = read_pose_file(raw / "a.const")  # chosen by its suffix
    assert sample.layout == "kinect20" and (sample.sequence == 1.0).all()
    [sample] = read_pose_file(raw / "a.const", fmt="constant", value=3.0, second_actor="duplicate")  # NTU's is ignored
    assert (sample.sequence == 3.0).all()
    with pytest.raises(FormatOptionError, match=r"option 'second_actor' does not apply to format 'constant' \(it takes \['value'\]\)"):
        prepare("constant", raw, tmp_path / "other", second_actor="zeros")
    (raw / "c.dat").write_text("")
    with pytest.raises(DataFormatError, match=r"unknown pose file type '.dat' \(expected .npy, .skeleton, .json, .txt, .csv, .const"):
        read_pose_file(raw / "c.dat")


def test_the_command_line_offers_every_format_option():
    prepare_command = typer.main.get_command(app).commands["data"].commands["prepare"]
    cli_options = {param.name for param in prepare_command.params}
    format_options = {option for name in preparable_formats() for option in option_names(name)}
    assert format_options <= cli_options
    assert option_help("class_names") == "pyskl/ctrgcn-npz/files/openpose/mmpose/mediapipe/alphapose: text file with one class name per line"
    assert " | ".join(preparable_formats()) in prepare_command.params[0].help
