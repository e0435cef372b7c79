"""Inputs that claim far more than they hold are refused before anything of that size is allocated.

Each is read in a subprocess whose address space is capped 1.5 GiB above what it uses once
imported: an importer that sized a list or an array by the claim would die of MemoryError
there instead of giving the expected one-line error.
"""

import io
import json
import os
import pickle
import subprocess
import sys
import zipfile

import numpy as np
import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="caps memory with RLIMIT_AS, reads /proc")

_SCRIPT = r"""
import json, resource, sys
from skelmae.data.formats import read_pose_file
from skelmae.data.prepare import prepare
from skelmae.errors import DataFormatError

with open("/proc/self/status") as fh:
    used = next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmSize:"))
limit = used + 3 * 2**29
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
results = {}
for name, (fmt, path, out) in json.loads(sys.argv[1]).items():
    try:
        if out:
            prepare(fmt, path, out, workers=1, progress=False)
        else:
            read_pose_file(path, fmt)
        results[name] = "no error"
    except DataFormatError as exc:
        results[name] = str(exc)
    except MemoryError:
        results[name] = "MemoryError"
print(json.dumps(results))
"""


def _npy(shape, descr="<f4", data=b"\0" * 64):
    fh = io.BytesIO()
    np.lib.format.write_array_header_1_0(fh, {"descr": descr, "fortran_order": False, "shape": shape})
    return fh.getvalue() + data


def _npz(path, members):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for key, data in members.items():
            archive.writestr(f"{key}.npy", data)


def test_claims_beyond_the_input_are_refused_under_a_memory_limit(tmp_path):
    x = np.ones((2, 4, 150), np.float32)
    _npz(tmp_path / "frames.npz", {"x_train": _npy((2, 10**9, 150), data=x.tobytes()), "y_train": _npy((2,), "<i8", b"\0" * 16)})
    np.savez(tmp_path / "label.npz", x_train=x, y_train=np.array([0, 10**9]))
    _npz(tmp_path / "one_hot.npz", {"x_train": _npy(x.shape, data=x.tobytes()), "y_train": _npy((2, 10**9), "<f8")})
    annotation = {"frame_dir": "clip", "keypoint": np.ones((1, 4, 17, 2), np.float32), "img_shape": (480, 640)}
    (tmp_path / "label.pkl").write_bytes(pickle.dumps([{**annotation, "label": 0}, {**annotation, "label": 10**9}]))
    (tmp_path / "memo.pkl").write_bytes(b"\x80\x04]r" + (10**9).to_bytes(4, "little") + b".")  # memo entry 10^9
    (tmp_path / "frames.npy").write_bytes(_npy((10**9, 25, 3)))
    (tmp_path / "S001C001P001R001A001.skeleton").write_text("1000000000\n1000000000")
    cases = {
        "npz header of 10^9 frames": ("ctrgcn-npz", "frames.npz", "claims shape (2, 1000000000, 150)"),
        "npz integer label 10^9": ("ctrgcn-npz", "label.npz", "array 'y_train', row 1: label is 1000000000"),
        "npz one-hot header of 10^9 classes": ("ctrgcn-npz", "one_hot.npz", "claims shape (2, 1000000000)"),
        "pyskl label 10^9": ("pyskl", "label.pkl", "annotations[1].label (sample 'clip'): label is 1000000000"),
        "pickle memo index 10^9": ("pyskl", "memo.pkl", "stores memo entry 1000000000 after only 0 entries"),
        "npy header of 10^9 frames": ("npy", "frames.npy", "claims shape (1000000000, 25, 3)"),
        "ntu counts of 10^9": ("ntu60", "S001C001P001R001A001.skeleton", "file ends inside frame 1"),
    }
    jobs = {name: (fmt, str(tmp_path / file), str(tmp_path / f"out{i}") if fmt in ("ctrgcn-npz", "pyskl") else "")
            for i, (name, (fmt, file, _)) in enumerate(cases.items())}
    run = subprocess.run([sys.executable, "-c", _SCRIPT, json.dumps(jobs)], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert run.returncode == 0, run.stderr
    results = json.loads(run.stdout)
    for name, (_, _, message) in cases.items():
        assert message in results[name], (name, results[name])
