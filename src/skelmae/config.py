"""Typed run configurations: dataclass schemas, YAML presets and ``key=value`` overrides.

Precedence: schema defaults < YAML file (and the files it names in ``_base_``) < overrides.
OmegaConf checks every key and type against the schema, so a typo fails loudly instead of
being silently ignored (a common complaint about the argparse+YAML pattern of the field).

Presets ship inside the package under ``skelmae/configs``; ``--config`` accepts a file
path or a preset name such as ``demo/pretrain``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from skelmae.data.transforms import MODALITIES
from skelmae.errors import ConfigError

PRESET_DIR = Path(__file__).parent / "configs"
T = TypeVar("T")


@dataclass
class DataConfig:
    root: str = ""  # a dataset folder (manifest.json + .npy files)
    train_split: str = "train"
    test_split: str = "test"
    window: int = 120  # frames after crop-resize
    p_interval: list[float] = field(default_factory=lambda: [0.5, 1.0])
    test_crop: float = 0.95
    min_crop: int = 64  # reference lower bound on the random crop, in frames
    rotation: float = 0.3  # radians, per axis (in-plane for 2D)
    rotation_axes: str = "xyz"  # the 3D axes rotated about ("xy": view changes without camera roll)
    align_view: bool = False  # turn each 3D sequence to face the same way (layout's spine and shoulders)
    flip: float = 0.0  # probability of a left/right mirror
    modality: str = "joint"  # joint | bone | motion | bone_motion
    batch_size: int = 128  # global batch (split over ranks)
    num_workers: int = 2
    val_fraction: float = 0.0  # class-stratified validation split carved from the training split
    val_seed: int = 0

    def __post_init__(self) -> None:
        if self.modality not in MODALITIES:
            raise ConfigError(f"data.modality: expected one of {', '.join(MODALITIES)}, got {self.modality!r}")
        if not self.rotation_axes or set(self.rotation_axes) - set("xyz"):
            raise ConfigError(f"data.rotation_axes: expected letters of 'xyz' such as 'xy', got {self.rotation_axes!r}")


@dataclass
class GraphConfig:
    """SkeletonMAE-G and its STRL fine-tuning network (``model.arch=graph_mae``; models/graph_mae.py)."""

    feat_dim: int = 64  # D: each joint's channels are lifted to D
    hidden_dim: int = 64  # D_h: width of the GIN layers and of the encoder output
    encoder_layers: int = 3
    decoder_layers: int = 1
    regions: int = 2  # body-part groups masked per frame graph (mask.strategy=bodypart)
    fixed_regions: list[str] = field(default_factory=list)  # mask these groups in every graph instead
    remask: bool = False  # GraphMAE re-masking of the encoder output before the decoder
    beta: float = 2.0  # exponent of the scaled cosine error
    edge_weight: float = 0.0  # weight of the bone-vector (edge) term; 0 = joints only, as in the paper
    strl_layers: int = 3  # STRL fine-tuning network depth


@dataclass
class ModelConfig:
    arch: str = "st_mae"  # st_mae (transformer) | graph_mae (GIN, see models/graph_mae.py)
    segment: int = 4  # frames per token
    dim: int = 256
    depth: int = 8
    heads: int = 8
    mlp_ratio: float = 4.0
    decoder_dim: int = 256
    decoder_depth: int = 3
    decoder_heads: int = 8
    drop_path: float = 0.0
    graph: GraphConfig = field(default_factory=GraphConfig)


@dataclass
class MaskConfig:
    # random | joint | frame | spatiotemporal | bodypart | motion; graph_mae: bodypart | random
    strategy: str = "motion"
    ratio: float = 0.9
    tau: float = 0.8  # motion-aware temperature (0.75 for NTU120 in MAMP)
    target: str = "motion"  # coords | motion
    norm_target: bool = True


@dataclass
class OptimConfig:
    name: str = "adamw"  # adamw | adam | sgd
    lr: float = 1e-3
    min_lr: float = 5e-4
    warmup_epochs: float = 20.0
    weight_decay: float = 0.05
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    momentum: float = 0.9
    layer_decay: float = 1.0
    clip_grad: float = 0.0  # max gradient norm, 0 = off
    schedule: str = "cosine"  # cosine: warm-up then cosine to min_lr | step: warm-up then x gamma at milestones
    milestones: list[int] = field(default_factory=list)
    gamma: float = 0.1


@dataclass
class TrainConfig:
    epochs: int = 400
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    output_dir: str = ""  # default: runs/<protocol>/<timestamp>
    eval_every: int = 1
    bf16: bool = False  # bf16 autocast (GPU)
    compile: bool = False  # torch.compile the model
    deterministic: bool = False
    progress: bool = True


@dataclass
class PretrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    mask: MaskConfig = field(default_factory=MaskConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


@dataclass
class LinearConfig:
    init: str = ""  # pre-trained checkpoint; empty = randomly initialised encoder (baseline)
    augment: bool = True  # train-time augmentation; without it features are computed once
    data: DataConfig = field(default_factory=lambda: DataConfig(batch_size=256, val_fraction=0.1))
    model: ModelConfig = field(default_factory=ModelConfig)  # used only without ``init``
    optim: OptimConfig = field(
        default_factory=lambda: OptimConfig(name="sgd", lr=0.1, min_lr=0.0, warmup_epochs=0.0, weight_decay=0.0)
    )
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=100))


@dataclass
class SemiConfig:
    fraction: float = 1.0  # share of training labels used; < 1 for the semi-supervised protocol
    seed: int = 0  # draws the class-stratified subset (saved and reused as an index file)
    subset_file: str = ""  # default: <data.root>/subsets/<split>-<pct>pct-seed<seed>.npy


@dataclass
class FinetuneConfig:
    init: str = ""  # pre-trained checkpoint; empty = the same network from scratch
    head: str = "mlp"  # mlp (MAMP fine-tune head) | linear | strl (graph model)
    head_dropout: float = 0.3
    label_smoothing: float = 0.1
    semi: SemiConfig = field(default_factory=SemiConfig)
    data: DataConfig = field(default_factory=lambda: DataConfig(batch_size=48, val_fraction=0.1))
    model: ModelConfig = field(default_factory=lambda: ModelConfig(drop_path=0.3))
    optim: OptimConfig = field(
        default_factory=lambda: OptimConfig(
            lr=3e-4, min_lr=1e-5, warmup_epochs=5.0, weight_decay=0.05, betas=[0.9, 0.999], layer_decay=0.8
        )
    )
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=100))


@dataclass
class KnnConfig:
    init: str = ""  # pre-trained checkpoint (required)
    k: list[int] = field(default_factory=lambda: [1, 20])
    temperature: float = 0.07  # weights neighbours by exp(cosine / temperature)
    data: DataConfig = field(default_factory=lambda: DataConfig(batch_size=256))
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=0))


def resolve_config_path(config: str | Path) -> Path:
    path = Path(config)
    if path.is_file():
        return path
    preset = PRESET_DIR / f"{config}.yaml"
    if preset.is_file():
        return preset
    presets = sorted(p.relative_to(PRESET_DIR).with_suffix("").as_posix() for p in PRESET_DIR.rglob("*.yaml"))
    raise ConfigError(f"config {str(config)!r} is neither a file nor a preset; presets: {', '.join(presets)}")


def _load_yaml(path: Path, seen: tuple[Path, ...] = ()) -> DictConfig:
    if path.resolve() in seen:
        raise ConfigError(f"{path}: '_base_' includes form a cycle")
    try:
        node = OmegaConf.load(path)
    except Exception as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(node, DictConfig):
        raise ConfigError(f"{path}: top level must be a mapping of sections")
    bases = node.pop("_base_", None)
    if bases is None:
        return node
    merged = OmegaConf.create()
    for base in [bases] if isinstance(bases, str) else list(bases):
        merged = OmegaConf.merge(merged, _load_yaml((path.parent / base), seen + (path.resolve(),)))
    return OmegaConf.merge(merged, node)


def load_config(schema: type[T], config: str | Path | None = None, overrides: list[str] | None = None) -> T:
    """Build a config object of type ``schema`` from defaults, an optional YAML and overrides."""
    base = OmegaConf.structured(schema)
    source = "defaults"
    try:
        if config:
            path = resolve_config_path(config)
            source = str(path)
            base = OmegaConf.merge(base, _load_yaml(path))
        if overrides:
            bad = [o for o in overrides if "=" not in o]
            if bad:
                raise ConfigError(f"overrides must look like section.key=value, got {bad}")
            source = "overrides"
            base = OmegaConf.merge(base, OmegaConf.from_dotlist(list(overrides)))
        return OmegaConf.to_object(base)  # type: ignore[return-value]
    except OmegaConfBaseException as exc:
        raise ConfigError(f"invalid configuration ({source}): {exc.msg if hasattr(exc, 'msg') else exc}") from exc


def to_dict(cfg: Any) -> dict[str, Any]:
    return OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True)  # type: ignore[return-value]


def to_yaml(cfg: Any) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))
