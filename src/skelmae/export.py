"""Exporting a trained classifier (encoder + head) for deployment: ONNX or TorchScript.

The exported graph maps a preprocessed batch ``skeleton`` (N, C, window, V, M) to class
``logits`` (N, K); the batch axis N is dynamic. Preprocessing (test crop, resize to the
window, modality) is not part of the graph: a sidecar ``<file>.json`` records everything
it needs (the checkpoint's ``data`` entry: layout, channels, persons, window, test crop,
modality, class names) next to the input and output names.

Every export is checked before it is put in place: the exported model and the PyTorch
model run on the same random batch of another size than the one used for export, and
the export fails if any logit differs by more than ``tolerance`` (1e-4). A file that is
written is therefore one that reproduces the checkpoint.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from skelmae.atomic import atomic_output, write_json_atomic
from skelmae.engine.checkpoint import load_checkpoint
from skelmae.errors import SkelmaeError
from skelmae.inference import SkeletonModel

__all__ = ["EXPORT_FORMATS", "ExportResult", "export_classifier"]

EXPORT_FORMATS = {"onnx": ".onnx", "torchscript": ".torchscript.pt"}  # format -> default suffix
INPUT_NAME, OUTPUT_NAME = "skeleton", "logits"


@dataclass
class ExportResult:
    path: Path
    metadata: Path
    max_abs_diff: float  # exported vs PyTorch logits on the check batch


class ExportError(SkelmaeError):
    """The exported model could not be written or does not reproduce the checkpoint."""


def _example(model: SkeletonModel, batch: int, seed: int) -> torch.Tensor:
    """Random clips; with several person slots the last sample's second person is absent, so
    that the check covers the pooling over present persons."""
    shape = (batch, len(model.channels), model.window, model.layout.num_joints, model.num_persons)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
    if model.num_persons > 1:
        x[-1, ..., 1:] = 0
    return x


def _export_onnx(network: torch.nn.Module, example: torch.Tensor, path: Path, opset: int) -> None:
    try:
        import onnx  # noqa: F401  (the exporter needs it; fail here with an install hint)
        import onnxscript  # noqa: F401
    except ImportError as exc:
        raise ExportError("ONNX export needs onnx and onnxscript: pip install 'skelmae[export]'") from exc
    batch = torch.export.Dim("batch", min=1)
    registry_log = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registry_log.level
    registry_log.setLevel(logging.ERROR)  # it lists every torchvision op it skips
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*LeafSpec.*", category=FutureWarning)  # torch-internal
            program = torch.onnx.export(
                network, (example,), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                dynamic_shapes={"x": {0: batch}}, opset_version=opset, dynamo=True, verbose=False,
            )
    finally:
        registry_log.setLevel(level)
    program.save(str(path))


def _run_onnx(path: Path, x: torch.Tensor) -> np.ndarray:
    try:
        import onnxruntime
    except ImportError as exc:
        raise ExportError("checking an ONNX export needs onnxruntime: pip install 'skelmae[export]'") from exc
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})[0]


def _export_torchscript(network: torch.nn.Module, example: torch.Tensor, path: Path) -> None:
    with warnings.catch_warnings():  # shape checks traced as constants; the export is verified numerically
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(network, example, check_trace=False)
    torch.jit.save(traced, str(path))


def _run_torchscript(path: Path, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return torch.jit.load(str(path), map_location="cpu")(x).numpy()


def export_classifier(
    checkpoint: str | Path,
    out: str | Path | None = None,
    fmt: str = "onnx",
    tolerance: float = 1e-4,
    opset: int = 18,
) -> ExportResult:
    """Export the classifier of ``checkpoint`` to ``out`` (default: beside the checkpoint,
    ``<stem>.onnx`` or ``<stem>.torchscript.pt``)."""
    if fmt not in EXPORT_FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; expected one of {', '.join(EXPORT_FORMATS)}")
    checkpoint = Path(checkpoint)
    state = load_checkpoint(checkpoint)
    if state["kind"] != "classifier":
        raise ExportError(
            f"{checkpoint}: a {state['kind']!r} checkpoint; export needs a classifier (linear probe or fine-tuned) checkpoint"
        )
    model = SkeletonModel(state, str(checkpoint), "cpu")
    network = model.classifier.eval()
    network.encoder.skip_absent = False  # static shapes: every person slot is computed, absent ones zeroed
    out = Path(out) if out is not None else checkpoint.with_name(checkpoint.stem + EXPORT_FORMATS[fmt])
    if out.resolve() == checkpoint.resolve():
        raise ExportError(f"{out}: refusing to overwrite the checkpoint itself; choose another output name")
    export_batch, check = _example(model, 2, seed=0), _example(model, 3, seed=1)
    with torch.no_grad():
        expected = network(check).numpy()
    with atomic_output(out) as tmp:
        if fmt == "onnx":
            _export_onnx(network, export_batch, tmp, opset)
            got = _run_onnx(tmp, check)
        else:
            _export_torchscript(network, export_batch, tmp)
            got = _run_torchscript(tmp, check)
        if got.shape != expected.shape:
            raise ExportError(f"{fmt} export returns shape {got.shape} for a batch of 3, expected {expected.shape}")
        diff = float(np.abs(got - expected).max())
        if not diff <= tolerance:
            raise ExportError(f"{fmt} export differs from PyTorch by {diff:.3g} (> {tolerance:g}); nothing written")
    metadata = write_json_atomic(out.with_name(out.name + ".json"), {
        "format": fmt, "checkpoint": str(checkpoint), "input": INPUT_NAME, "output": OUTPUT_NAME,
        "input_shape": ["N", len(model.channels), model.window, model.layout.num_joints, model.num_persons],
        "input_axes": ["batch", "channels", "frames", "joints", "persons"],
        "data": state["data"], "max_abs_diff": diff,
    })
    return ExportResult(out, metadata, diff)
