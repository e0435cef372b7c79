"""The ``skelmae`` command line (also ``python -m skelmae``).

Training commands take ``--config`` (a YAML file or a preset name) followed by any number
of ``section.key=value`` overrides, e.g.::

    skelmae pretrain --config demo/pretrain data.root=data/synth train.epochs=5
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from skelmae.data.formats import FORMATS, option_help, preparable_formats, readable_formats
from skelmae.errors import SkelmaeError

app = typer.Typer(
    add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
    help="Self-supervised skeleton action recognition with masked autoencoders.",
)
data_app = typer.Typer(no_args_is_help=True, help="Create, import and inspect datasets.")
app.add_typer(data_app, name="data")
console = Console()
err_console = Console(stderr=True)

OVERRIDES = typer.Argument(None, help="section.key=value overrides, applied after the config file")
CONFIG = typer.Option(None, "--config", "-c", help="YAML file or preset name (see `skelmae presets`)")


def user_errors(fn):
    """Print a :class:`SkelmaeError` as one readable line and exit with status 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (SkelmaeError, FileExistsError) as exc:
            err_console.print(f"[bold red]error:[/bold red] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper


@app.command()
@user_errors
def demo(
    seed: int = typer.Option(0, help="first seed"),
    repeats: int = typer.Option(1, help="run seeds seed .. seed+repeats-1 and report mean ± std"),
    data_dir: Optional[Path] = typer.Option(None, help="where the synthetic set is cached (default ~/.cache/skelmae)"),
    out: Optional[Path] = typer.Option(None, help="run directory (default runs/demo/<time>)"),
    overrides: Optional[list[str]] = OVERRIDES,
) -> None:
    """Synthetic data -> pre-training -> linear probe of the pre-trained and a random encoder.

    Overrides prefixed ``pretrain.`` or ``linear.`` go to that stage; others
    (``data.*``, ``train.*``, ``model.*``) to both.
    """
    from skelmae.demo import run_demo

    run_demo(seed=seed, repeats=repeats, data_dir=data_dir, out_dir=out, overrides=overrides, console=console)


TRAINING_HELP = {
    "pretrain": "Self-supervised pre-training (SkeletonMAE / MAMP / SkeletonMAE-G recipes).",
    "linear": "Linear probe on a frozen encoder (``init=CHECKPOINT``; none = random encoder).",
    "finetune": "Fine-tune a pre-trained encoder end to end (layer-wise lr decay, drop path, label smoothing).",
    "semi": "Fine-tune with a fixed class-stratified share of the labels (semi.fraction=0.01 or 0.1).",
    "transfer": "Fine-tune an encoder pre-trained on another dataset (joints and channels must match).",
    "scratch": "Train the same network from random initialisation (the baseline without pre-training).",
}


def _training_command(protocol: str):
    def command(
        config: Optional[str] = CONFIG,
        resume: bool = typer.Option(False, help="continue the run in train.output_dir from its last.pt"),
        overrides: Optional[list[str]] = OVERRIDES,
    ) -> None:
        from skelmae.protocols import run_training
        from skelmae.viz.callbacks import run_plots

        console.print_json(json.dumps(run_training(protocol, config, overrides, resume, run_plots())))

    command.__doc__ = TRAINING_HELP[protocol]
    return command


for _protocol in TRAINING_HELP:
    app.command(_protocol)(user_errors(_training_command(_protocol)))


@app.command()
@user_errors
def knn(config: Optional[str] = CONFIG, overrides: Optional[list[str]] = OVERRIDES) -> None:
    """k-nearest-neighbour retrieval accuracy of frozen features (``init=CHECKPOINT``)."""
    from skelmae.config import KnnConfig, load_config
    from skelmae.protocols.knn import run_knn

    console.print_json(json.dumps(run_knn(load_config(KnnConfig, config, overrides))))


@app.command()
@user_errors
def evaluate(
    checkpoint: Path = typer.Option(..., help="a classifier checkpoint (linear probe or fine-tuned)"),
    data: Optional[Path] = typer.Option(None, help="dataset folder (default: the one it was trained on)"),
    split: str = typer.Option("", help="split to evaluate (default: the run's test split)"),
    out: Optional[Path] = typer.Option(None, help="output folder (default: beside the checkpoint)"),
    batch_size: int = typer.Option(128),
    device: str = typer.Option("auto"),
    keys: Optional[list[str]] = typer.Argument(None, help="data.root=DIR and data.test_split=NAME: the same as --data, --split"),
) -> None:
    """Top-1, top-5, mean-class accuracy and the confusion matrix (PNG + CSV) of a classifier."""
    from skelmae.protocols.evaluate import data_and_split, run_evaluate
    from skelmae.viz.callbacks import run_plots

    data_root, split = data_and_split(str(data) if data else None, split, keys or [])
    result = run_evaluate(str(checkpoint), data_root, split, str(out) if out else None,
                          device=device, batch_size=batch_size, callbacks=run_plots())
    console.print_json(json.dumps(result))


@app.command()
@user_errors
def ensemble(
    eval_dirs: list[Path] = typer.Argument(..., help="folders written by `skelmae evaluate` (one per stream: joint, bone, ...)"),
    weights: Optional[str] = typer.Option(None, help="one weight per folder, comma-separated, e.g. 0.6,0.6,0.4,0.4 (default: all 1)"),
    softmax: bool = typer.Option(False, "--softmax", help="add the streams' class probabilities instead of their raw scores (the papers add raw scores)"),
    out: Optional[Path] = typer.Option(None, help="output folder (default: ensemble-<split> beside the runs)"),
) -> None:
    """Fuse the class scores of several evaluations of the same clips (multi-stream ensemble)."""
    from skelmae.data.storage import SkeletonStore
    from skelmae.eval.ensemble import check_same_clips, default_output, load_stream, parse_weights, write_ensemble
    from skelmae.eval.ensemble import ensemble as fuse_streams

    streams = [load_stream(folder) for folder in eval_dirs]
    check_same_clips(streams)
    store = SkeletonStore(streams[0].data)
    labels = store.labels[store.split(streams[0].split)]
    report, fused = fuse_streams(streams, labels, parse_weights(weights, len(streams)), softmax)
    written = write_ensemble(out or default_output(streams), report, fused)
    console.print_json(json.dumps({**report, "out": str(written)}))


SCHEMAS = {
    "pretrain": "PretrainConfig", "linear": "LinearConfig", "knn": "KnnConfig",
    **{p: "FinetuneConfig" for p in ("finetune", "semi", "transfer", "scratch")},
}


@app.command("config")
@user_errors
def show_config(
    protocol: str = typer.Argument(..., help=" | ".join(SCHEMAS)),
    config: Optional[str] = CONFIG,
    overrides: Optional[list[str]] = OVERRIDES,
) -> None:
    """Print the fully resolved configuration of a protocol."""
    from skelmae import config as configs

    from skelmae.protocols.finetune import RECIPES

    if protocol not in SCHEMAS:
        raise SkelmaeError(f"unknown protocol {protocol!r}; expected one of {sorted(SCHEMAS)}")
    schema = getattr(configs, SCHEMAS[protocol])
    typer.echo(configs.to_yaml(configs.load_config(schema, config, overrides, preset=RECIPES.get(protocol))))


@app.command()
def presets() -> None:
    """List the configuration presets shipped with skelmae."""
    from skelmae.config import PRESET_DIR

    for path in sorted(PRESET_DIR.rglob("*.yaml")):
        typer.echo(path.relative_to(PRESET_DIR).with_suffix("").as_posix())


@app.command()
@user_errors
def layouts(name: Optional[str] = typer.Argument(None, help="a layout name or a .yaml/.json layout file")) -> None:
    """List the skeleton layouts, or print one (joints, parents, groups) as YAML."""
    import yaml

    from skelmae.data.layouts import available_layouts, get_layout

    if name is None:
        for key in available_layouts():
            layout = get_layout(key)
            typer.echo(f"{key:10s} {layout.num_joints:3d} joints  {layout.description}")
        return
    typer.echo(yaml.safe_dump(get_layout(name).to_dict(), sort_keys=False))


@data_app.command("synth")
@user_errors
def data_synth(
    out: Path = typer.Option(..., help="dataset folder to create"),
    seed: int = typer.Option(0),
    subjects: int = typer.Option(40),
    test_subjects: int = typer.Option(12),
    repetitions: int = typer.Option(4),
    overwrite: bool = typer.Option(False, help="replace an existing folder (only once the new one is complete)"),
) -> None:
    """Generate the procedural synthetic dataset (ntu25 layout, 14 classes, train/test by subject)."""
    from skelmae.data.synthetic import SynthConfig, write_synthetic

    cfg = SynthConfig(seed=seed, subjects=subjects, test_subjects=test_subjects, repetitions=repetitions)
    path = write_synthetic(out, cfg, overwrite=overwrite)
    console.print(f"wrote {path}")


def _format_list(names: list[str]) -> str:
    """``name: summary`` lines of registered dataset formats, for command help."""
    return "\n\n".join(f"{name}: {FORMATS.get(name).summary}" for name in names)


@data_app.command("prepare", help=(
    "Import a raw dataset into a canonical dataset folder (parallel; a killed run leaves nothing complete-looking)."
    f"\n\nFormats:\n\n{_format_list(preparable_formats())}"
))
@user_errors
def data_prepare(
    format: str = typer.Argument(..., help=" | ".join(preparable_formats())),
    raw: list[Path] = typer.Option(..., help="raw data: a folder or file; repeat for several (e.g. both NTU 120 archives)"),
    out: Path = typer.Option(..., help="dataset folder to create"),
    workers: Optional[int] = typer.Option(None, help="worker processes (default: all CPU cores)"),
    on_error: str = typer.Option("fail", help="fail: stop at the first bad file; skip: leave it out and list it in OUT.skipped.txt"),
    overwrite: bool = typer.Option(False, help="replace an existing folder (only once the new one is complete)"),
    second_actor: Optional[str] = typer.Option(None, help=option_help("second_actor")),
    center: Optional[bool] = typer.Option(None, "--center/--no-center", help=option_help("center")),
    max_persons: Optional[int] = typer.Option(None, help=option_help("max_persons")),
    label_base: Optional[str] = typer.Option(None, help=option_help("label_base")),
    layout: Optional[str] = typer.Option(None, help=option_help("layout")),
    class_names: Optional[Path] = typer.Option(None, help=option_help("class_names")),
    protocol: Optional[str] = typer.Option(None, help=option_help("protocol")),
    name_pattern: Optional[str] = typer.Option(None, help=option_help("name_pattern")),
    index: Optional[Path] = typer.Option(None, help=option_help("index")),
    split: Optional[list[str]] = typer.Option(None, help=option_help("split")),
    joints: Optional[int] = typer.Option(None, help=option_help("joints")),
    columns: Optional[str] = typer.Option(None, help=option_help("columns")),
    rows: Optional[str] = typer.Option(None, help=option_help("rows")),
    key: Optional[str] = typer.Option(None, help=option_help("key")),
    image_size: Optional[str] = typer.Option(None, help=option_help("image_size")),
    min_score: Optional[float] = typer.Option(None, help=option_help("min_score")),
    coordinates: Optional[str] = typer.Option(None, help=option_help("coordinates")),
    progress: bool = typer.Option(True, help="show a progress bar"),
) -> None:
    from skelmae.data.prepare import prepare

    options = {
        "second_actor": second_actor, "center": center, "max_persons": max_persons, "label_base": label_base,
        "layout": layout, "class_names": class_names, "protocol": protocol, "name_pattern": name_pattern,
        "index": index, "split": split or None, "joints": joints, "columns": columns, "rows": rows, "key": key,
        "image_size": image_size, "min_score": min_score, "coordinates": coordinates,
    }
    report = prepare(
        format, raw, out, workers=workers, on_error=on_error, overwrite=overwrite, progress=progress,
        **{key: value for key, value in options.items() if value is not None},
    )
    for note in report.notes:
        console.print(f"note: {note}", highlight=False, soft_wrap=True)
    splits = ", ".join(f"{name} {count}" for name, count in report.split_counts.items())
    console.print(
        f"wrote {report.out}: {report.samples} samples ({splits}) from {report.items} inputs "
        f"in {report.seconds:.1f} s ({report.items_per_second:.1f}/s)", highlight=False, soft_wrap=True,
    )
    if report.report is not None:
        console.print(
            f"[yellow]{len(report.skipped)} input(s) skipped, {len(report.dropped)} item(s) left out: see {report.report}[/yellow]",
            highlight=False, soft_wrap=True,
        )


@data_app.command("export")
@user_errors
def data_export(
    root: Path = typer.Argument(..., help="dataset folder"),
    to: str = typer.Option(..., help="npz (CTR-GCN/MAMP) or pyskl (annotation pickle)"),
    out: Path = typer.Option(..., help="file to write"),
    protocol: Optional[str] = typer.Option(None, help="npz: which <protocol>_train/_test splits (default: the only one)"),
    frames: Optional[int] = typer.Option(None, help="npz: pad/cut every sample to this many frames (default: the longest; 300 for the reference feeders)"),
    compress: bool = typer.Option(False, help="npz: deflate the archive (np.savez_compressed)"),
    progress: bool = typer.Option(True, help="show a progress bar"),
) -> None:
    """Write a dataset folder back out as a CTR-GCN .npz or a PYSKL pickle."""
    from skelmae.data.formats.export import EXPORT_FORMATS, export_npz, export_pyskl

    if to not in EXPORT_FORMATS:
        raise SkelmaeError(f"--to must be one of {list(EXPORT_FORMATS)}, got {to!r}")
    if to == "npz":
        path = export_npz(root, out, protocol=protocol, frames=frames, compress=compress, progress=progress)
    else:
        path = export_pyskl(root, out, progress=progress)
    console.print(f"wrote {path}", highlight=False, soft_wrap=True)


@data_app.command("info")
@user_errors
def data_info(
    root: Path = typer.Argument(..., help="dataset folder"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON"),
) -> None:
    """Counts per split and class, sequence length statistics, layout, provenance."""
    from skelmae.data.info import describe, summarize
    from skelmae.data.storage import SkeletonStore

    if as_json:
        console.print_json(json.dumps(summarize(SkeletonStore(root))))
    else:
        console.print(describe(root))


RENDER_OUT_HELP = ".gif or .mp4 (a .png contact sheet is written beside it) or .png (contact sheet only)"
FPS = typer.Option(30.0, help="frames per second of the animation")
STRIDE = typer.Option(1, help="draw every n-th frame")
SHEET_FRAMES = typer.Option(8, "--sheet-frames", help="frames on the contact sheet (0: no sheet)")
AZIMUTH = typer.Option(25.0, help="3D camera: degrees about the vertical axis (0 = the Kinect's own view)")
ELEVATION = typer.Option(12.0, help="3D camera: degrees above the horizon")
DEVICE = typer.Option("cpu", help="cpu | cuda | cuda:N")
POSE_FORMAT = " | ".join(["auto (by suffix)", *readable_formats()])


def _pose_files_help() -> str:
    """What ``predict`` reads, from the registered formats: by suffix, and by name only."""
    formats = {name: FORMATS.get(name).cls for name in readable_formats()}
    by_suffix = dict.fromkeys(cls.pose_file for cls in formats.values() if not cls.unsafe)  # ntu60/ntu120 read one kind
    named = [f"; {cls.pose_file} need --format {name}" for name, cls in formats.items() if cls.unsafe]
    return "pose files: " + ", ".join(by_suffix) + "".join(named)


def _print_written(paths: list[Path]) -> None:
    for path in paths:
        console.print(f"wrote {path}")


@data_app.command("show")
@user_errors
def data_show(
    root: Path = typer.Argument(..., help="dataset folder"),
    index: int = typer.Option(0, help="sample index (within --split when given)"),
    split: Optional[str] = typer.Option(None, help="count --index within this split"),
    name: Optional[str] = typer.Option(None, help="pick the sample by name instead"),
    out: Path = typer.Option(Path("sample.gif"), help=RENDER_OUT_HELP),
    fps: float = FPS,
    stride: int = STRIDE,
    sheet_frames: int = SHEET_FRAMES,
    azimuth: float = AZIMUTH,
    elevation: float = ELEVATION,
) -> None:
    """Draw one stored sequence (bones of the dataset's layout, one colour per person)."""
    from skelmae.data.storage import SkeletonStore
    from skelmae.viz.render import Camera, render_sample

    store = SkeletonStore(root)
    written = render_sample(
        store, store.pick(index, split, name), out, Camera(azimuth, elevation), fps=fps, sheet_frames=sheet_frames, stride=stride,
    )
    _print_written(written)


@app.command()
@user_errors
def visualize(
    checkpoint: Path = typer.Argument(..., help="a pre-training (MAE) checkpoint"),
    data: Optional[Path] = typer.Option(None, "--data", help="dataset folder to take the sample from"),
    index: int = typer.Option(0, help="sample index (within --split when given)"),
    split: Optional[str] = typer.Option(None, help="count --index within this split"),
    name: Optional[str] = typer.Option(None, help="pick the sample by name instead"),
    file: Optional[Path] = typer.Option(None, "--file", help="a pose file instead of --data (see `skelmae predict`)"),
    fmt: str = typer.Option("auto", "--format", help=f"pose file format for --file: {POSE_FORMAT}"),
    out: Path = typer.Option(Path("reconstruction.gif"), help=RENDER_OUT_HELP),
    seed: int = typer.Option(0, help="seed of the random mask"),
    fps: float = FPS,
    stride: int = STRIDE,
    sheet_frames: int = SHEET_FRAMES,
    azimuth: float = AZIMUTH,
    elevation: float = ELEVATION,
    device: str = DEVICE,
) -> None:
    """Input, masked tokens (grey) and the MAE's reconstruction, side by side.

    The sample is preprocessed as in training (test crop resized to the checkpoint's window).
    Masked tokens show predictions (un-normalised with the true token's mean and std; motion
    targets integrated from the token's true first frame); visible tokens show the input.
    """
    from skelmae.inference import load, visualize_reconstruction
    from skelmae.viz.render import Camera

    if (data is None) == (file is None):
        raise SkelmaeError("give exactly one of --data DATASET (with --index/--name) or --file POSE_FILE")
    written = visualize_reconstruction(
        load(checkpoint, device), out, data=data, file=file, fmt=fmt, index=index, split=split, name=name, seed=seed,
        camera=Camera(azimuth, elevation), fps=fps, sheet_frames=sheet_frames, stride=stride,
    )
    _print_written(written)


@app.command()
@user_errors
def embed(
    checkpoint: Path = typer.Argument(..., help="an MAE or classifier checkpoint"),
    data: Path = typer.Option(..., "--data", help="dataset folder"),
    split: str = typer.Option("test", help="split to embed"),
    out: Path = typer.Option(Path("embedding.png"), help="scatter plot (PNG); the 2-D points go to the same name .csv"),
    max_samples: int = typer.Option(2000, help="embed a seeded random subset of at most this many samples"),
    perplexity: float = typer.Option(30.0, help="t-SNE perplexity (capped below a third of the samples)"),
    seed: int = typer.Option(0, help="seed of the subset and of t-SNE"),
    batch_size: int = typer.Option(64),
    device: str = DEVICE,
) -> None:
    """2-D t-SNE of the frozen encoder's clip features, coloured by class."""
    from skelmae.inference import embed_split, load

    _print_written(embed_split(
        load(checkpoint, device), data, split, out, max_samples=max_samples, perplexity=perplexity, seed=seed,
        batch_size=batch_size,
    ))


@app.command()
@user_errors
def predict(
    checkpoint: Path = typer.Argument(..., help="a classifier checkpoint (linear probe or fine-tuned)"),
    files: list[Path] = typer.Argument(..., help=_pose_files_help()),
    fmt: str = typer.Option("auto", "--format", help=POSE_FORMAT),
    top_k: int = typer.Option(5, "--top-k", "-k", help="classes to list per sample"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON document instead of a table"),
    device: str = DEVICE,
) -> None:
    """Top-k classes with probabilities, preprocessing as in training (read from the checkpoint).

    A file that cannot be read is reported and the others are still predicted; the exit
    status is then 2.
    """
    import warnings

    from skelmae.inference import load, predict_files

    with warnings.catch_warnings():  # each result carries its warnings: printed once, below, as one line
        warnings.simplefilter("ignore")
        results = predict_files(load(checkpoint, device), files, fmt, top_k)
    for r in results:
        for warning in r.get("warnings", []):
            err_console.print(f"[yellow]warning:[/yellow] {r['file']}: {warning}", highlight=False, soft_wrap=True)
    failed = [r for r in results if "error" in r]
    if as_json:
        typer.echo(json.dumps({"checkpoint": str(checkpoint), "results": results}, indent=2))
    else:
        for r in results:
            if "error" not in r:
                typer.echo(r["file"] + ("" if Path(r["file"]).stem == r["sample"] else f" [{r['sample']}]"))
                for rank, item in enumerate(r["top"], 1):
                    typer.echo(f"  {rank}. {item['probability']:6.1%}  {item['class']}")
        for r in failed:
            err_console.print(f"[bold red]error:[/bold red] {r['error']}", highlight=False, soft_wrap=True)
    if failed:
        raise typer.Exit(2)


@app.command()
@user_errors
def export(
    checkpoint: Path = typer.Argument(..., help="a classifier checkpoint (linear probe or fine-tuned)"),
    fmt: str = typer.Option("onnx", "--format", help="onnx | torchscript"),
    out: Optional[Path] = typer.Option(None, help="output file (default: beside the checkpoint)"),
) -> None:
    """Export encoder + head with a dynamic batch axis; checked against PyTorch before it is written."""
    from skelmae.export import export_classifier

    result = export_classifier(checkpoint, out, fmt)
    console.print(
        f"wrote {result.path} and {result.metadata.name}; largest difference to PyTorch on a random batch of 3: "
        f"{result.max_abs_diff:.1e}"
    )


@app.command()
@user_errors
def bench(
    stages: Optional[list[str]] = typer.Argument(None, help="pretrain | finetune | inference | loader | ddp | skeletonclr | skeattnclr | epoch | matmul (default: matmul and the first four)"),
    batch: list[int] = typer.Option([8, 16], help="samples per step (repeat the option for several)"),
    steps: int = typer.Option(5, help="timed steps per measurement"),
    warmup: int = typer.Option(2, help="untimed steps first"),
    decoder_depth: int = typer.Option(3, help="decoder blocks of the pre-training model (MAMP: 3; SkeletonMAE: 5)"),
    device: str = typer.Option("cpu", help="cpu | cuda | cuda:N"),
    threads: int = typer.Option(0, help="torch threads (0: torch's default)"),
    bf16: bool = typer.Option(False, help="bf16 autocast"),
    compile: bool = typer.Option(False, "--compile", help="torch.compile the model"),
    workers: int = typer.Option(2, help="DataLoader worker processes for the loader stage"),
    attention: str = typer.Option("sdpa", help="sdpa (the model's: fused, its backward in fp32 in bf16 training on CPU) | fused (the fused kernel in the step's precision) | explicit (softmax(QK^T)V); the last two are A/B baselines"),
    adamw: str = typer.Option("fused", help="fused (one kernel) | loop (per-parameter loop, the A/B baseline)"),
    persons: Optional[float] = typer.Option(None, help="fraction of samples with a second person (default: NTU60's real fraction, 0.183; 1: every sample has two)"),
    reference_mode: bool = typer.Option(False, "--reference-mode", help="also run pretrain / finetune / inference / epoch the reference's way (every person slot, fp32, fused attention and AdamW only) and print the speed-up"),
    backbone: str = typer.Option("transformer", help="finetune / inference: a registered backbone at its defaults, the published network (default: the paper's transformer)"),
    vs_fp32: bool = typer.Option(False, "--vs-fp32", help="with --bf16: also run each model stage in fp32 and print the bf16 speed-up"),
    profile: Optional[Path] = typer.Option(None, help="also record two steps of each model stage with torch.profiler: op tables and Chrome traces go to this folder"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="also write the rows here (JSON list)"),
) -> None:
    """Samples/s, peak memory, FLOPs/sample and MFU at the paper configuration (see skelmae.bench)."""
    from rich.table import Table

    from skelmae.atomic import write_json_atomic
    from skelmae.bench import (
        ADAMW, ATTENTION, BACKBONE_STAGES, NTU60_TWO_PERSON_FRACTION, PAPER_BACKBONE, PRECISION_STAGES, REFERENCE_STAGES,
        STAGES, BenchSpec,
        classifier_backbone, run_bench,
    )

    chosen = stages or ["matmul", "pretrain", "finetune", "inference", "loader"]
    if attention not in ATTENTION:
        raise SkelmaeError(f"--attention {attention!r}: expected one of {list(ATTENTION)}")
    if adamw not in ADAMW:
        raise SkelmaeError(f"--adamw {adamw!r}: expected one of {list(ADAMW)}")
    unknown = sorted(set(chosen) - set(STAGES))
    if unknown:
        raise SkelmaeError(f"unknown benchmark stage(s) {unknown}; expected some of {list(STAGES)}")
    other_backbone = backbone != PAPER_BACKBONE
    if other_backbone:
        if not set(chosen) & set(BACKBONE_STAGES):
            raise SkelmaeError(f"--backbone applies to the stages {list(BACKBONE_STAGES)}; none of them is chosen")
        classifier_backbone(backbone)
    persons = NTU60_TWO_PERSON_FRACTION if persons is None else persons
    if not 0.0 <= persons <= 1.0:
        raise SkelmaeError(f"--persons {persons}: expected a fraction of samples in [0, 1]")
    if vs_fp32 and not bf16:
        raise SkelmaeError("--vs-fp32 compares bf16 with fp32: add --bf16")
    specs = [
        BenchSpec(stage=stage, batch=b, steps=steps, warmup=warmup, decoder_depth=decoder_depth, device=device,
                  threads=threads, bf16=bf16, compile=compile, workers=workers, attention=attention, adamw=adamw,
                  persons=persons, reference=reference_mode and stage in REFERENCE_STAGES,
                  backbone=backbone if stage in BACKBONE_STAGES else PAPER_BACKBONE,
                  compare_fp32=vs_fp32 and stage in PRECISION_STAGES, profile=str(profile or ""))
        for stage in chosen for b in ([batch[0]] if stage == "matmul" else batch)
    ]
    columns = {
        "stage": "stage", "backbone": "backbone", "batch": "batch", "reference": "reference", "processes": "procs",
        "samples_per_s": "samples/s",
        "vs_reference": "x reference", "vs_fp32": "x fp32", "step_ms": "step ms", "peak_memory_gib": "peak GiB", "gflop_per_sample": "GFLOP/sample",
        "achieved_gflop_per_s": "GFLOP/s", "matmul_gflop_per_s": "matmul GFLOP/s", "mfu_percent": "MFU %",
        "matmul_fp32_gflop_per_s": "fp32 matmul GFLOP/s", "matmul_bf16_gflop_per_s": "bf16 matmul GFLOP/s",
        "bf16_over_fp32": "bf16/fp32", "ddp_overhead_ms": "DDP ms/step", "top_ops": "most self time",
    }
    if not other_backbone:
        columns.pop("backbone")
    title = (f"skelmae bench on {device} ({'bf16' if bf16 else 'fp32'}{', compiled' if compile else ''}, {attention} attention, "
             f"{adamw} AdamW, {persons:.3f} of samples with a second person)")
    rows = run_bench(specs, on_result=lambda row: console.print(
        ", ".join(f"{label} {row[key]}" for key, label in columns.items() if key in row), highlight=False))
    shown = {key: label for key, label in columns.items() if any(key in row for row in rows)}
    shown.pop("top_ops", None)  # in the per-row lines and the JSON: too wide for the table
    if not reference_mode:
        shown.pop("reference")
    table = Table(*shown.values(), title=title)
    for row in rows:
        table.add_row(*(str(row.get(key, "")) for key in shown))
    console.print(table)
    if json_out:
        write_json_atomic(json_out, rows)


def main() -> None:
    app(prog_name="skelmae")


if __name__ == "__main__":
    sys.exit(main())
