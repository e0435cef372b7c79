"""ONNX and TorchScript export of the classifier (skelmae.export): dynamic batch, same logits as PyTorch."""

import json

import numpy as np
import pytest
import torch

from skelmae.errors import SkelmaeError
from skelmae.export import export_classifier
from skelmae.inference import load


def random_batch(model, n, seed):
    shape = (n, len(model.channels), model.window, model.layout.num_joints, model.num_persons)
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def classifier(tiny_checkpoints):
    return load(tiny_checkpoints["classifier"])


def check_sidecar(result, classifier, fmt):
    meta = json.loads(result.metadata.read_text())
    assert meta["format"] == fmt and meta["input_shape"] == ["N", 3, 16, 25, 2]
    assert meta["data"]["classes"] == classifier.classes and meta["data"]["window"] == 16
    assert result.max_abs_diff <= 1e-4


def test_onnx_matches_pytorch_for_any_batch_size(tiny_checkpoints, classifier, tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime")
    result = export_classifier(tiny_checkpoints["classifier"], tmp_path / "model.onnx", "onnx")
    check_sidecar(result, classifier, "onnx")
    session = onnxruntime.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["skeleton"] and [o.name for o in session.get_outputs()] == ["logits"]
    for n in (1, 5):
        x = random_batch(classifier, n, seed=10 + n)
        with torch.no_grad():
            expected = classifier.classifier(x).numpy()
        got = session.run(None, {"skeleton": x.numpy()})[0]
        assert got.shape == (n, 14) and np.abs(got - expected).max() <= 1e-4


@pytest.mark.filterwarnings("ignore:`torch.jit.*deprecated:DeprecationWarning")  # TorchScript is deprecated upstream
def test_torchscript_matches_pytorch_for_any_batch_size(tiny_checkpoints, classifier, tmp_path):
    result = export_classifier(tiny_checkpoints["classifier"], tmp_path / "model.pt", "torchscript")
    check_sidecar(result, classifier, "torchscript")
    module = torch.jit.load(str(result.path))
    for n in (1, 4):
        x = random_batch(classifier, n, seed=20 + n)
        with torch.no_grad():
            assert torch.allclose(module(x), classifier.classifier(x), atol=1e-4)


def test_export_refuses_what_it_cannot_export(tiny_checkpoints, tmp_path):
    with pytest.raises(SkelmaeError, match="export needs a classifier"):
        export_classifier(tiny_checkpoints["mae"], tmp_path / "m.onnx")
    with pytest.raises(SkelmaeError, match="unknown export format 'tflite'"):
        export_classifier(tiny_checkpoints["classifier"], tmp_path / "m.tflite", "tflite")
    with pytest.raises(SkelmaeError, match="refusing to overwrite the checkpoint"):
        export_classifier(tiny_checkpoints["classifier"], tiny_checkpoints["classifier"], "torchscript")
