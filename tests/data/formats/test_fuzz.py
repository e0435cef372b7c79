"""Every importer fuzzed with mutated inputs (real files where the test data are present).

A mutated input must end in a :class:`DataFormatError` or in samples that ``DatasetWriter.add``
accepts; nothing else. ``data prepare`` runs as the command line does, with ``--on-error skip``,
so a bad item must also never abort the import: where an intact file sits beside the mutated
one, the import has to succeed. Readable formats are also read with ``read_pose_file``, which
must return finite float32 clips.

Memory must stay bounded too: the process's peak resident size may not grow by more than
``MEMORY_GROWTH`` over a whole run (an unpickler sizing its memo by a damaged index once took
8 GB here).

The default run tries a few dozen inputs per importer; ``-m slow`` tries a thousand each.
"""

from __future__ import annotations

import io
import pickle
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from skelmae.data.formats import read_pose_file
from skelmae.data.prepare import prepare
from skelmae.data.storage import SkeletonStore
from skelmae.errors import DataFormatError

try:
    import resource
except ImportError:  # Windows
    resource = None

IMPORTERS = ["ntu", "pku-mmd", "nw-ucla", "pyskl", "ctrgcn-npz", "npy", "files", "mmpose", "alphapose", "mediapipe"]
MEMORY_GROWTH = 2**30  # bytes of peak resident size the fuzzed inputs may add
QUICK = settings(max_examples=30, deadline=None, print_blob=True,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example])
LONG = settings(QUICK, max_examples=1000)

# -- byte-level mutations ------------------------------------------------------------------

_NUMBER = re.compile(rb"-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")
_EXTREMES = [
    b"1e39", b"-1e39", b"3e38", b"-3e38", b"1e308", b"nan", b"inf", b"-inf", b"1000000000", b"-1000000000", b"-1", b"0",
    b"", b"-0", b"1" * 400, b"9" * 4400, b"1e-45", b"\x00", b"\xff\xfe", b"\r\n", b"\n\n", b" ", b",", b"x", b"1_0",
]


@st.composite
def mutated(draw: st.DrawFn, seed: bytes) -> bytes:
    """``seed`` after one to three mutations: a flipped byte, truncation, a number replaced by an
    extreme or malformed value, a line dropped or repeated, a chunk copied elsewhere."""
    data = seed
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["flip", "truncate", "number", "line", "splice"]))
        if kind == "flip" and data:
            i = draw(st.integers(0, len(data) - 1))
            data = data[:i] + bytes([data[i] ^ draw(st.integers(1, 255))]) + data[i + 1 :]
        elif kind == "truncate":
            data = data[: draw(st.integers(0, len(data)))]
        elif kind == "number":
            spans = [m.span() for m in _NUMBER.finditer(data)]
            if spans:
                start, end = spans[draw(st.integers(0, len(spans) - 1))]
                data = data[:start] + draw(st.sampled_from(_EXTREMES) | st.binary(max_size=6)) + data[end:]
        elif kind == "line":
            lines = data.split(b"\n")
            i = draw(st.integers(0, len(lines) - 1))
            lines[i : i + 1] = [lines[i]] * draw(st.integers(0, 3))
            data = b"\n".join(lines)
        else:
            start = draw(st.integers(0, len(data)))
            end = draw(st.integers(start, min(len(data), start + 4096)))
            at = draw(st.integers(0, len(data)))
            data = data[:at] + data[start:end] + data[at:]
    return data


# -- what every outcome must satisfy --------------------------------------------------------


def _prepare(fmt: str, raw: Path, out: Path, must_succeed: bool = False, **options) -> None:
    """``data prepare --on-error skip``: a format error or a dataset, and a dataset when an intact file is there."""
    try:
        prepare(fmt, raw, out, workers=1, on_error="skip", overwrite=True, progress=False, **options)
    except DataFormatError:
        if must_succeed:
            raise
        return
    assert len(SkeletonStore(out)) >= 1


def _read(path: Path, fmt: str, **options) -> None:
    try:
        samples = read_pose_file(path, fmt, **options)
    except DataFormatError:
        return
    for sample in samples:
        assert sample.sequence.dtype == np.float32 and np.isfinite(sample.sequence).all()


# -- seeds: real files cut short, or small synthetic ones ------------------------------------


def _synthetic_skeleton(frames: int, bodies: int) -> str:
    rng = np.random.default_rng(bodies)
    lines = [str(frames)]
    for _ in range(frames):
        lines.append(str(bodies))
        for body in range(bodies):
            lines += [f"{7 + body} 0 1 1 1 1 0 0.1 0.2 2", "25"]
            lines += [" ".join(f"{v:.6f}" for v in (*rng.normal(0, 0.5, 3), 1, 2, 3, 4, 0.5, 0.1, 0.2, 0.3)) + " 2" for _ in range(25)]
    return "\r\n".join(lines) + "\r\n"


def _first_frames(text: str, frames: int) -> str:
    """A ``.skeleton`` file cut to its first frames (the frame count rewritten)."""
    lines = text.splitlines()
    i = 1
    for _ in range(frames):
        i += 1 + int(lines[i]) * 27
    return "\r\n".join([str(frames), *lines[1:i]]) + "\r\n"


def _pku_skeleton(real: Path | None) -> str:
    if real is not None:
        path = sorted((real / "pku_mmd_v1_samples" / "Data").rglob("*.txt"))[0]
        return "\n".join(path.read_text().splitlines()[:40]) + "\n"
    rng = np.random.default_rng(0)
    return "".join(" ".join(f"{v:.6f}" for v in np.r_[rng.normal(0, 1, 75), np.zeros(75)]) + "\n" for _ in range(40))


def _annotations(real: Path | None) -> dict:
    if real is not None:
        content = pickle.loads((real / "pyskl_format_custom_hrnet" / "ntu60_hrnet.pkl").read_bytes())
        annotations = [{**ann, "keypoint": ann["keypoint"][:, :6], "keypoint_score": ann["keypoint_score"][:, :6]}
                       for ann in content["annotations"][:2]]
    else:
        rng = np.random.default_rng(0)
        annotations = [{"frame_dir": f"clip{i}", "label": i, "img_shape": (480, 640), "total_frames": 6,
                        "keypoint": rng.uniform(0, 480, (1, 6, 17, 2)).astype(np.float16),
                        "keypoint_score": rng.uniform(0, 1, (1, 6, 17)).astype(np.float16)} for i in range(2)]
    names = [ann["frame_dir"] for ann in annotations]
    return {"split": {"train": names[:1], "test": names[1:]}, "annotations": annotations}


def _npz_members(two_d_labels: bool, five_d: bool) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    x = np.zeros((3, 6, 150), np.float32)
    x[:, :4] = rng.normal(0, 1, (3, 4, 150))
    if five_d:
        x = x.reshape(3, 6, 2, 25, 3).transpose(0, 4, 1, 3, 2).copy()
    y = np.eye(5)[[0, 3, 4]] if two_d_labels else np.array([0, 3, 4])
    return {"x_train": x, "y_train": y, "x_test": x[:2], "y_test": y[:2]}


def _npy_bytes(array: np.ndarray, header: dict | None = None, data: bytes | None = None) -> bytes:
    """``array`` as ``.npy`` bytes, optionally with another header or data."""
    fh = io.BytesIO()
    fortran = header.get("fortran_order", False) if header else np.isfortran(array)
    base = {"descr": np.lib.format.dtype_to_descr(array.dtype), "fortran_order": bool(fortran), "shape": array.shape}
    np.lib.format.write_array_header_1_0(fh, {**base, **(header or {})})
    return fh.getvalue() + (array.tobytes(order="F" if base["fortran_order"] else "C") if data is None else data)


_DESCRS = ["<f4", "<f8", "<f2", ">f4", "<i8", "<u1", "|b1", "<c8", "|O", "|V8", "<U3", "<M8[s]"]
_DIMS = st.sampled_from([0, 1, 2, 3, 5, 25, 75, 150, -1, 10**9, 2**62])


@st.composite
def npy_member(draw: st.DrawFn, array: np.ndarray) -> bytes:
    """``array`` as ``.npy`` bytes with its header or data damaged: another shape, dtype or order,
    or too few or too many bytes."""
    header: dict = {}
    if draw(st.booleans()):
        shape = list(array.shape)
        if shape and draw(st.booleans()):
            shape[draw(st.integers(0, len(shape) - 1))] = draw(_DIMS)
        else:
            shape = draw(st.lists(_DIMS, max_size=5))
        header["shape"] = tuple(shape)
    if draw(st.booleans()):
        header["descr"] = draw(st.sampled_from(_DESCRS))
    if draw(st.booleans()):
        header["fortran_order"] = draw(st.booleans())
    data = array.tobytes()
    data = draw(st.sampled_from([data, data[: len(data) // 2], data + data, b""]))
    return _npy_bytes(array, header, data)


def _npz(members: dict[str, bytes], compress: bool) -> bytes:
    fh = io.BytesIO()
    with zipfile.ZipFile(fh, "w", zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED) as archive:
        for key, data in members.items():
            archive.writestr(f"{key}.npy", data)
    return fh.getvalue()


_ODD_VALUES = st.one_of(
    st.integers(-(2**70), 2**70), st.sampled_from([10**9, -1, 0, 1, 2**63]), st.floats(), st.text(max_size=5), st.none(),
    st.sampled_from(["a\nb", "../labels", "", "S001C001P001R001A001"]),
    st.tuples(st.floats() | st.integers(), st.floats() | st.integers()),
    hnp.arrays(st.sampled_from([np.float16, np.float32, np.float64, np.int64, np.uint8, np.bool_, np.complex64]),
               hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=4)),
)


@st.composite
def pickled(draw: st.DrawFn, content: dict) -> bytes:
    """A PYSKL pickle: ``content`` with a field, a split or a coordinate replaced by an odd value,
    pickled, or its bytes mutated."""
    annotations = [dict(ann) for ann in content["annotations"]]
    split = {name: list(members) for name, members in content["split"].items()}
    target = draw(st.sampled_from(["field", "value", "split", "none"]))
    ann = annotations[draw(st.integers(0, len(annotations) - 1))]
    if target == "field":
        key = draw(st.sampled_from(["frame_dir", "label", "keypoint", "keypoint_score", "img_shape", "total_frames"]))
        if draw(st.booleans()):
            ann[key] = draw(_ODD_VALUES)
        else:
            ann.pop(key, None)
    elif target == "value":
        keypoint = ann["keypoint"].astype(np.float64)
        keypoint.flat[draw(st.integers(0, keypoint.size - 1))] = draw(st.sampled_from([1e39, -1e39, 3e38, np.nan, np.inf, 1e300]))
        ann["keypoint"] = keypoint
    elif target == "split":
        name = draw(st.sampled_from(list(split)))
        split[draw(st.sampled_from([name, "../labels", "a/b", "", ".", "x\ny"]))] = split.pop(name)
    data = pickle.dumps({"split": split, "annotations": annotations}, protocol=draw(st.integers(3, 5)))
    return draw(mutated(data)) if draw(st.booleans()) else data


# -- one case per importer ------------------------------------------------------------------


@dataclass(repr=False)
class Case:
    inputs: st.SearchStrategy  # what one example writes
    run: Callable[[object], None]  # writes it and imports it

    def __repr__(self) -> str:  # hypothesis prints the arguments of a failing example
        return "Case(...)"


def _one_file_case(folder: Path, seeds: list[str], kept: str, fuzzed: str, formats: tuple[str, ...], **options) -> Case:
    """A folder of one good file (``kept``) and one mutated seed (``fuzzed``), imported in each format
    with ``options``."""
    raw = folder / "raw"
    raw.mkdir()
    (raw / kept).write_text(seeds[0])

    def run(data: bytes) -> None:
        path = raw / fuzzed
        path.write_bytes(data)
        for fmt in formats:
            _prepare(fmt, raw, folder / fmt, must_succeed=True, **options)
            _read(path, fmt, **options)

    return Case(st.sampled_from([s.encode() for s in seeds]).flatmap(mutated), run)


def _ntu_case(folder: Path, real: Path | None) -> Case:
    seeds = [_synthetic_skeleton(14, 2), _synthetic_skeleton(3, 1)]
    if real is not None:
        raw = real / "ntu_rgbd_samples" / "raw_skeletons"
        seeds += [_first_frames((raw / f"{name}.skeleton").read_text(), 14) for name in ("S017C003P020R002A054", "S001C001P001R001A011")]
    return _one_file_case(folder, seeds, "S001C001P001R001A001.skeleton", "S002C002P002R002A002.skeleton", ("ntu60", "ntu120"))


def _pku_case(folder: Path, real: Path | None) -> Case:
    skeleton = _pku_skeleton(real)
    seeds = {
        "Data/0002-L.txt": skeleton,
        "Label/0002-L.txt": "1,0,20,2\n5,15,40,1\n51,30,30,0\n7,35,900,2\n",
        "cross-subject.txt": "Training videos: \n0002-L, 0003-M\nValidataion videos: \n0004-R\n",
        "cross-view.txt": "Training videos: \n0002-L\nValidataion videos: \n0003-M\n",
    }
    raw = folder / "raw"
    for name, text in {**seeds, "Data/0003-M.txt": skeleton, "Label/0003-M.txt": "2,0,10,1\n"}.items():
        (raw / name).parent.mkdir(parents=True, exist_ok=True)
        (raw / name).write_text(text)

    def run(example: tuple[str, bytes]) -> None:
        name, data = example
        (raw / name).write_bytes(data)
        try:
            for center in (False, True):
                _prepare("pku-mmd", raw, folder / "ds", must_succeed=name.startswith(("Data", "Label")), center=center)
        finally:
            (raw / name).write_text(seeds[name])

    return Case(st.sampled_from(sorted(seeds)).flatmap(lambda name: st.tuples(st.just(name), mutated(seeds[name].encode()))), run)


def _nw_ucla_case(folder: Path, real: Path | None) -> Case:
    frames = [[[0.1 * j, 0.2 + 0.01 * t, 3.0] for j in range(20)] for t in range(4)]
    seeds = ['{"file_name": "a02_s03_e01_v02", "skeletons": ' + str(frames) + ', "label": 2}']
    if real is not None:
        seeds.append((real / "nw_ucla" / "all_sqe" / "a01_s01_e00_v01.json").read_text())
    return _one_file_case(folder, seeds, "a02_s03_e01_v02.json", "a01_s01_e00_v01.json", ("nw-ucla",))


def _pyskl_case(folder: Path, real: Path | None) -> Case:
    content = _annotations(real)
    rng = np.random.default_rng(1)
    three_d = {"split": {"xsub_train": ["S001C001P001R001A001"]}, "annotations": [
        {"frame_dir": f"S001C001P001R001A00{i + 1}", "label": i, "keypoint": rng.normal(0, 1, (2, 5, 25, 3)).astype(np.float32)}
        for i in range(2)
    ]}
    path = folder / "poses.pkl"

    def run(data: bytes) -> None:
        path.write_bytes(data)
        _prepare("pyskl", path, folder / "ds")
        _read(path, "pyskl")

    return Case(st.sampled_from([content, three_d]).flatmap(pickled), run)


def _ctrgcn_case(folder: Path, real: Path | None) -> Case:
    variants = [_npz_members(two_d, five_d) for two_d in (True, False) for five_d in (False, True)]

    @st.composite
    def archives(draw: st.DrawFn) -> bytes:
        arrays = draw(st.sampled_from(variants))
        members = {key: _npy_bytes(value) for key, value in arrays.items()}
        if draw(st.booleans()):
            key = draw(st.sampled_from(sorted(members)))
            members[key] = draw(npy_member(arrays[key]))
        data = _npz(members, compress=draw(st.booleans()))
        return draw(mutated(data)) if draw(st.booleans()) else data

    path = folder / "NTU60_CS.npz"

    def run(data: bytes) -> None:
        path.write_bytes(data)
        _prepare("ctrgcn-npz", path, folder / "ds")

    return Case(archives(), run)


def _npy_case(folder: Path, real: Path | None) -> Case:
    rng = np.random.default_rng(0)
    clips = [rng.normal(0, 1, (5, 2, 25, 3)).astype(np.float32), rng.normal(0, 1, (4, 20, 3)),
             np.asfortranarray(rng.integers(-5, 5, (3, 1, 17, 3)))]
    path = folder / "clip.npy"

    def run(data: bytes) -> None:
        path.write_bytes(data)
        _read(path, "npy")

    inputs = st.sampled_from(clips).flatmap(
        lambda clip: st.one_of(npy_member(clip), mutated(_npy_bytes(clip))),
    )
    return Case(inputs, run)


def _files_case(folder: Path, real: Path | None) -> Case:
    rows = [" ".join(f"{0.1 * j + t:.3f}" for j in (1, 2, 3)) + " 1" for t in range(3) for _ in range(20)]
    per_frame = ["x,y,z,c", *(",".join(["0.5,1.5,2.5,1"] * 20) for _ in range(3))]
    seeds = ["\n".join(rows) + "\n", "\n".join(per_frame) + "\n"]
    return _one_file_case(folder, seeds, "a1_s1.txt", "a2_s2.txt", ("files",), joints=20, columns="x,y,z,c")


def _keypoints(joints: int, step: float) -> list[float]:
    return [round(v, 2) for j in range(joints) for v in (100 + 7 * j + step, 200 - 3 * j, 0.9)]


def _mmpose_case(folder: Path, real: Path | None) -> Case:
    frames = [{"frame_id": t, "instances": [{"keypoints": np.reshape(_keypoints(17, t), (17, 3))[:, :2].tolist(),
                                              "keypoint_scores": [0.9] * 17, "bbox_score": 0.8}]} for t in range(3)]
    seeds = [str(frames).replace("'", '"'), str({"meta_info": {}, "instance_info": frames}).replace("'", '"')]
    return _one_file_case(folder, seeds, "walk_1.json", "walk_2.json", ("mmpose",))


def _alphapose_case(folder: Path, real: Path | None) -> Case:
    detections = [{"image_id": f"{t}.jpg", "category_id": 1, "keypoints": _keypoints(17, t), "score": 2.5, "idx": i}
                  for t in range(3) for i in (1, 2)]
    return _one_file_case(folder, [str(detections).replace("'", '"')], "walk_1.json", "walk_2.json", ("alphapose",))


def _mediapipe_case(folder: Path, real: Path | None) -> Case:
    header = ",".join(f"{j}_{c}" for j in range(33) for c in ("x", "y", "z", "visibility"))
    rows = [",".join(f"{0.3 + 0.01 * j + 0.02 * t:.3f},{0.5 - 0.01 * j:.3f},0.1,0.9" for j in range(33)) for t in range(3)]
    return _one_file_case(folder, [header + "\n" + "\n".join(rows) + "\n"], "walk_1.csv", "walk_2.csv", ("mediapipe",))


_CASES = {"ntu": _ntu_case, "pku-mmd": _pku_case, "nw-ucla": _nw_ucla_case, "pyskl": _pyskl_case,
          "ctrgcn-npz": _ctrgcn_case, "npy": _npy_case, "files": _files_case, "mmpose": _mmpose_case,
          "alphapose": _alphapose_case, "mediapipe": _mediapipe_case}


@pytest.fixture(scope="module")
def real(request) -> Path | None:
    """The real test data, or None: the fuzz tests then mutate synthetic inputs only."""
    try:
        return request.getfixturevalue("shared_data")
    except pytest.skip.Exception:
        return None


class _Cases(dict):
    def __repr__(self) -> str:
        return "cases"


@pytest.fixture(scope="module")
def cases(real, tmp_path_factory) -> dict[str, Case]:
    return _Cases({name: make(tmp_path_factory.mktemp(name), real) for name, make in _CASES.items()})


def _peak_memory() -> int:
    """Peak resident size of this process so far, in bytes (0 where the platform has no getrusage)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 if resource else 0


@pytest.fixture(scope="module")
def memory_ceiling() -> int:
    return _peak_memory() + MEMORY_GROWTH


def _fuzz(case: Case, data: st.DataObject, ceiling: int) -> None:
    example = data.draw(case.inputs, label="input")
    case.run(example)
    assert _peak_memory() <= ceiling, "an input made the importer allocate far more than it holds"


@pytest.mark.parametrize("importer", IMPORTERS)
@QUICK
@given(data=st.data())
def test_fuzz(cases, memory_ceiling, importer, data):
    _fuzz(cases[importer], data, memory_ceiling)


@pytest.mark.slow
@pytest.mark.parametrize("importer", IMPORTERS)
@LONG
@given(data=st.data())
def test_fuzz_long(cases, memory_ceiling, importer, data):
    _fuzz(cases[importer], data, memory_ceiling)
