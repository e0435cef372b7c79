"""Typed run configurations: dataclass schemas, YAML presets and ``key=value`` overrides.

Precedence: schema defaults < YAML file (and the files it names in ``_base_``) < overrides.
OmegaConf checks every key and type against the schema, so a typo fails loudly instead of
being silently ignored (a common complaint about the argparse+YAML pattern of the field).

Presets ship inside the package under ``skelmae/configs``; ``--config`` accepts a file
path or a preset name such as ``demo/pretrain``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, make_dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import yaml
from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from skelmae.data.transforms import MODALITIES
from skelmae.errors import ConfigError
from skelmae.models.common import BACKBONES, HEADS, METHODS
from skelmae.registry import Registry

PRESET_DIR = Path(__file__).parent / "configs"
T = TypeVar("T")


@dataclass
class DataConfig:
    root: str = ""  # a dataset folder (manifest.json + .npy files)
    train_split: str = "train"
    test_split: str = "test"
    window: int = MISSING  # frames after crop-resize
    p_interval: list[float] = field(default_factory=lambda: [0.5, 1.0])
    test_crop: float = 0.95
    min_crop: int = 64  # reference lower bound on the random crop, in frames
    rotation: float = 0.3  # radians, per axis (in-plane for 2D)
    rotation_axes: str = "xyz"  # the 3D axes rotated about ("xy": view changes without camera roll)
    align_view: bool = False  # turn each 3D sequence to face the same way (layout's spine and shoulders)
    flip: float = 0.0  # probability of a left/right mirror
    shear: float = 0.0  # amplitude of a random shear of the coordinates (SkeletonCLR: 0.5)
    modality: str = "joint"  # joint | bone | motion | bone_motion
    batch_size: int = MISSING  # global batch (split over ranks and accumulation steps: see train.accum_steps)
    num_workers: int = 2
    val_fraction: float = 0.0  # class-stratified validation split carved from the training split
    val_group: str = ""  # a metadata field (e.g. subject): validation holds whole groups, unseen in training
    val_seed: int = 0

    def __post_init__(self) -> None:
        if self.modality not in MODALITIES:
            raise ConfigError(f"data.modality: expected one of {', '.join(MODALITIES)}, got {self.modality!r}")
        if not self.rotation_axes or set(self.rotation_axes) - set("xyz"):
            raise ConfigError(f"data.rotation_axes: expected letters of 'xyz' such as 'xy', got {self.rotation_axes!r}")


def registry_section(name: str, registry: Registry, selector: str, default: str, doc: str) -> type:
    """A config section choosing one entry of ``registry``: ``<selector>`` names it and one
    sub-section per registered entry holds that entry's typed config, so a new backbone,
    method or head brings its options with it and typos still fail loudly."""
    fields: list[tuple[str, Any, Any]] = [(selector, str, field(default=default))]
    for entry in registry.entries():
        if entry.config is not None:
            fields.append((entry.name, entry.config, field(default_factory=entry.config)))
    section = make_dataclass(name, fields, namespace={"__doc__": doc, "SELECTOR": selector, "REGISTRY": registry})
    section.__module__ = __name__
    return section


ModelConfig = registry_section(
    "ModelConfig", BACKBONES, "arch", "transformer", "The backbone: model.arch names it, model.<arch>.* configures it."
)
MethodConfig = registry_section(
    "MethodConfig", METHODS, "name", "mae", "The pre-training method: method.name, then method.<name>.*."
)
HeadConfig = registry_section("HeadConfig", HEADS, "name", "mlp", "The classifier head: head.name, then head.<name>.*.")


def chosen(section: Any) -> dict[str, Any]:
    """``{"name", "config"}`` of the entry a registry section selects (what checkpoints store)."""
    name = getattr(section, section.SELECTOR)
    entry = section.REGISTRY.get(name)
    config = getattr(section, name) if entry.config is not None else None
    return {"name": name, "config": asdict(config) if config is not None else {}}


@dataclass
class OptimConfig:
    name: str = "adamw"  # adamw | adam | sgd
    lr: float = MISSING
    min_lr: float = 0.0
    warmup_epochs: float = 0.0
    weight_decay: float = 0.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    momentum: float = 0.9
    nesterov: bool = False  # sgd: Nesterov momentum
    layer_decay: float = 1.0
    clip_grad: float = 0.0  # max gradient norm, 0 = off
    schedule: str = "cosine"  # cosine: warm-up then cosine to min_lr | step: warm-up then x gamma at milestones
    milestones: list[int] = field(default_factory=list)
    gamma: float = 0.1


@dataclass
class TrainConfig:
    epochs: int = MISSING
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    output_dir: str = ""  # default: runs/<protocol>/<timestamp>
    eval_every: int = 1
    # Also score the test split at every evaluated epoch and report its best, labelled as such: only to
    # compare with papers that select the epoch on the test split; it never chooses what skelmae reports.
    report_best_test: bool = False
    accum_steps: int = 1  # gradient accumulation: data.batch_size is the global batch of one optimiser step
    bf16: bool = False  # bf16 autocast (GPU)
    compile: bool = False  # torch.compile the model
    deterministic: bool = False
    progress: bool = True
    threads: int = 0  # torch intra-op threads of the run, 0 = torch's default


# Recipe values live in the YAML presets only: ``load_config`` merges a protocol's recipe
# preset (PRESET) under the user's file, so the dataclasses carry types and neutral defaults.


@dataclass
class TrainingRunConfig:
    """The sections every training protocol has; ``model`` is used only without ``init`` downstream."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)  # type: ignore[valid-type]
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


@dataclass
class PretrainConfig(TrainingRunConfig):
    PRESET: ClassVar[str] = "recipes/mamp_pretrain"
    method: MethodConfig = field(default_factory=MethodConfig)  # type: ignore[valid-type]


@dataclass
class SemiConfig:
    fraction: float = 1.0  # share of training labels used; < 1 for the semi-supervised protocol
    seed: int = 0  # draws the class-stratified subset (saved and reused as an index file)
    subset_file: str = ""  # default: <data.root>/subsets/<split>-<pct>pct-seed<seed>.npy


@dataclass
class LinearConfig(TrainingRunConfig):
    PRESET: ClassVar[str] = "recipes/linear"
    init: str = ""  # pre-trained checkpoint; empty = randomly initialised encoder; raw = the clip itself (baselines)
    augment: bool = True  # train-time augmentation; without it features are computed once
    pool: str = "mean"  # the probe's features: mean (over steps, joints, persons) | joints | steps (per-joint or per-step means concatenated)
    layers: int = 1  # the encoder's last layers whose features are concatenated (transformer backbones)
    semi: SemiConfig = field(default_factory=SemiConfig)  # semi.fraction < 1: the probe trained on that share of the labels


@dataclass
class FinetuneConfig(TrainingRunConfig):
    PRESET: ClassVar[str] = "recipes/finetune"
    init: str = ""  # pre-trained checkpoint; empty = the same network from scratch
    head: HeadConfig = field(default_factory=HeadConfig)  # type: ignore[valid-type]
    label_smoothing: float = 0.0
    semi: SemiConfig = field(default_factory=SemiConfig)


@dataclass
class KnnConfig:
    PRESET: ClassVar[str] = "recipes/knn"
    init: str = ""  # pre-trained checkpoint, or raw: the clip itself as the feature (required)
    k: list[int] = field(default_factory=lambda: [1, 20])
    temperature: float = 0.07  # weights neighbours by exp(cosine / temperature)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=0))


@dataclass
class EvaluateConfig:
    checkpoint: str = MISSING  # a classifier checkpoint (linear probe or fine-tuned)
    data_root: str = ""  # default: the dataset it was trained on
    split: str = ""  # default: the run's test split
    batch_size: int = 128
    num_workers: int = 2
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=0))  # device, output_dir (default: beside the checkpoint)


def _preset_path(name: str) -> Path | None:
    """The shipped preset called ``name`` (with or without ``.yaml``), if there is one."""
    for candidate in (PRESET_DIR / name, PRESET_DIR / f"{name}.yaml"):
        if candidate.suffix == ".yaml" and candidate.is_file():
            return candidate
    return None


def resolve_config_path(config: str | Path) -> Path:
    path = Path(config)
    if path.is_file():
        return path
    preset = _preset_path(str(config))
    if preset is not None:
        return preset
    presets = sorted(p.relative_to(PRESET_DIR).with_suffix("").as_posix() for p in PRESET_DIR.rglob("*.yaml"))
    raise ConfigError(f"config {str(config)!r} is neither a file nor a preset; presets: {', '.join(presets)}")


def _resolve_base(base: str, including: Path) -> Path:
    """A ``_base_`` entry: a path relative to the file that names it, else a preset name (as ``--config``)."""
    relative = including.parent / base
    if relative.is_file():
        return relative
    preset = _preset_path(base)
    if preset is not None:
        return preset
    raise ConfigError(
        f"file not found: {relative} (included from {including}); a _base_ entry is a path relative to that file "
        "or a preset name (see `skelmae presets`)"
    )


def _read_yaml(path: Path) -> DictConfig:
    try:
        node = OmegaConf.load(path)
    except FileNotFoundError as exc:
        raise ConfigError(f"file not found: {path}") from exc
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f", line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{where}: not valid YAML: {exc.problem or exc.context}") from exc
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(node, DictConfig):
        raise ConfigError(f"{path}: top level must be a mapping of sections")
    return node


def _yaml_layers(path: Path, seen: tuple[Path, ...] = ()) -> list[tuple[str, DictConfig]]:
    """``(file, contents)`` of ``path`` and its ``_base_`` includes, in merge order (bases first),
    so that an invalid value is reported in the file that sets it."""
    if path.resolve() in seen:
        raise ConfigError(f"{path}: '_base_' includes form a cycle")
    node = _read_yaml(path)
    bases = node.pop("_base_", None)
    bases = [] if bases is None else [bases] if isinstance(bases, str) else bases
    if not isinstance(bases, (list, ListConfig)) or not all(isinstance(b, str) for b in bases):
        raise ConfigError(f"{path}: '_base_' must be a file or preset name or a list of them, got {bases!r}")
    layers: list[tuple[str, DictConfig]] = []
    for base in bases:
        layers += _yaml_layers(_resolve_base(str(base), path), seen + (path.resolve(),))
    return layers + [(str(path), node)]


def _override_layer(override: str) -> tuple[str, DictConfig]:
    if "=" not in override:
        raise ConfigError(f"overrides must look like section.key=value, got {override!r}")
    try:
        return f"override {override}", OmegaConf.from_dotlist([override])
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {override!r}: the value is not valid YAML ({str(exc).splitlines()[0]})") from None


def load_config(
    schema: type[T], config: str | Path | None = None, overrides: list[str] | None = None, preset: str | None = None,
) -> T:
    """Build a config object of type ``schema``: its recipe preset (``preset``, default
    ``schema.PRESET``), then an optional YAML file, then ``key=value`` overrides.

    An invalid key or value raises one :class:`ConfigError` line naming the key, the problem
    and the file or override it came from."""
    recipe = preset or getattr(schema, "PRESET", None)
    layers = [
        *(_yaml_layers(resolve_config_path(recipe)) if recipe else []),
        *(_yaml_layers(resolve_config_path(config)) if config else []),
    ]
    source = "defaults"
    try:
        layers += [_override_layer(override) for override in overrides or []]
        base = OmegaConf.structured(schema)
        for source, layer in layers:
            base = OmegaConf.merge(base, layer)
        source = "the merged configuration"
        return OmegaConf.to_object(base)  # type: ignore[return-value]
    except OmegaConfBaseException as exc:
        raise ConfigError(_one_line(exc, source)) from exc


def _one_line(exc: OmegaConfBaseException, source: str) -> str:
    """omegaconf's message (problem, then ``full_key``/``reference_type``/``object_type`` lines) as one line."""
    problem = str(getattr(exc, "msg", None) or exc).splitlines()[0].strip()
    key = getattr(exc, "full_key", None)
    if isinstance(exc, MissingMandatoryValue) and key:
        return f"config error: {key}: no value given; set it in the config file or with {key}=VALUE"
    where = f"{key}: " if key else ""
    return f"config error: {where}{problem}{_moved_key_hint(problem)} (in {source})"


_MOVED = {  # keys of configurations before the registries, and where they live now
    "ModelConfig": "backbone options are under model.<arch>.* (e.g. model.transformer.dim, model.gin.feat_dim)",
    "PretrainConfig": "masking moved from mask.* to method.<name>.* (e.g. method.mae.mask, method.mae.ratio)",
    "FinetuneConfig": "head options are under head.<name>.* (head.name=mlp, head.mlp.dropout, head.strl.layers)",
}


def _moved_key_hint(message: str) -> str:
    for schema, hint in _MOVED.items():
        if f"not in '{schema}'" in message:
            return f"; {hint}"
    return ""


def to_dict(cfg: Any) -> dict[str, Any]:
    return OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True)  # type: ignore[return-value]


def to_yaml(cfg: Any) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))
