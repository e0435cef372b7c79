"""Throughput of the training and inference steps at the paper configuration.

``skelmae bench`` times, at MAMP's NTU configuration (T 120, 25 joints, 2 persons,
segment 4, width 256, 8 encoder blocks, 3 decoder blocks, 90 % motion-aware masking):

* ``pretrain``: one MAE step (masking, encoder on visible tokens, decoder, loss, backward, AdamW);
* ``finetune``: one classifier step on all 750 tokens (forward, backward, AdamW);
* ``inference``: the classifier's forward pass;
* both with ``backbone`` set to another registered backbone: that backbone at its registered
  defaults (the published network) under the same MLP head, on the same NTU input (T 120,
  25 joints, 2 persons);
* ``loader``: the DataLoader with the real training transform (crop-resize + rotation) on
  an NTU-like dataset written to a temporary folder;
* ``ddp``: the pre-training step in 2 gloo processes (one thread each) against 1 process
  with one thread and the same per-process batch: the difference is the DDP overhead.
* ``skeletonclr``, ``skeattnclr``: one contrastive pre-training step at the method's
  published NTU recipe (``recipes/<method>_pretrain``: ST-GCN, two views of 50 or 64
  frames, queue 32768, SGD, and the momentum-encoder update);
* ``epoch``: the whole pre-training loop (``skelmae pretrain`` with the NTU60 MAMP preset:
  the Trainer, the real DataLoader and transforms, the step, the checkpoint) over an NTU-like
  dataset of ``steps`` x ``batch`` clips, timed over its second epoch;
* ``matmul``: the dense fp32 and bf16 matmul rates of this device, so a bf16 figure can be
  read against what the hardware offers.

Every batch is "NTU-like": a fraction ``persons`` of its samples has a second person, the
rest an all-zero second slot (:data:`NTU60_TWO_PERSON_FRACTION` by default). A reference
row (``reference=True``) runs the same model the reference implementations' way: every
person slot encoded and decoded, fp32, with fused attention and fused AdamW only.

``profile`` (a folder) also records two steps of a model stage with ``torch.profiler``: the
op table (``<stage>-b<batch>[-bf16][-reference].txt``, by self time) and a Chrome trace
(``.trace.json``) go there, and the row names the three ops with most self time. With
``compare_fp32`` a bf16 measurement is followed by the same one in fp32, and its row gains
``vs_fp32``, its samples/s over fp32's.

Each measurement runs in its own process so that its peak memory (resident set on CPU,
allocated memory on CUDA) is its own. FLOPs per sample are counted with
``torch.utils.flop_counter`` on one step; model FLOPs utilisation (MFU) divides the
achieved FLOP/s by the dense matmul FLOP/s measured in the same process, same dtype.
"""

from __future__ import annotations

import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

CONTRASTIVE = ("skeletonclr", "skeattnclr")
STAGES = ("pretrain", "finetune", "inference", "loader", "ddp", *CONTRASTIVE, "epoch", "matmul")
REFERENCE_STAGES = ("pretrain", "finetune", "inference", "epoch")  # stages with a reference-mode row
PRECISION_STAGES = ("pretrain", "finetune", "inference", *CONTRASTIVE, "epoch")  # stages with a vs-fp32 row
BACKBONE_STAGES = ("finetune", "inference")  # stages that can time another backbone than the paper's
PAPER_BACKBONE = "transformer"
# sdpa: the model's attention (fused; on CPU in bf16 training, its backward in fp32); fused:
# the fused kernel in the step's precision throughout; explicit: the score matrix materialised.
ATTENTION = ("sdpa", "fused", "explicit")
ADAMW = ("fused", "loop")
# Samples of NTU RGB+D 60 with a second person: the 11 two-person actions (A50-A60) are
# 10,347 of the 56,578 usable samples (label.txt of the official per-sample metadata;
# tests/test_bench.py recounts it when the metadata is at hand).
NTU60_TWO_PERSON_FRACTION = 10_347 / 56_578


@dataclass
class BenchSpec:
    """One measurement; ``batch`` counts samples, each of which holds 2 persons."""

    stage: str
    batch: int = 8
    steps: int = 5
    warmup: int = 2
    decoder_depth: int = 3
    device: str = "cpu"
    threads: int = 0
    bf16: bool = False
    compile: bool = False
    workers: int = 2
    attention: str = "sdpa"
    adamw: str = "fused"
    persons: float = NTU60_TWO_PERSON_FRACTION  # fraction of samples with a second person
    reference: bool = False  # every person slot computed, fp32, fused attention and AdamW only
    backbone: str = PAPER_BACKBONE  # finetune / inference: a registered backbone at its defaults
    profile: str = ""  # a folder: also record two steps with torch.profiler there
    compare_fp32: bool = False  # bf16: also measure the same in fp32 and give the ratio
    extra: dict[str, Any] = field(default_factory=dict)

    def as_reference(self) -> BenchSpec:
        """The same measurement run the reference's way."""
        return replace(self, bf16=False, compile=False, attention="sdpa", adamw="fused", reference=True, compare_fp32=False)


def two_person_samples(batch: int, persons: float) -> int:
    """How many of ``batch`` samples have a second person at the fraction ``persons``."""
    if not 0.0 <= persons <= 1.0:
        raise ValueError(f"persons is a fraction of samples in [0, 1], got {persons}")
    return round(batch * persons)


def paper_mae_args(decoder_depth: int = 3) -> dict[str, Any]:
    """The paper model's description, as a pre-training checkpoint stores it: ``input`` (NTU
    layout, x/y/z, 120 frames), ``backbone`` (transformer: segment 4, width 256, 8 blocks of
    8 heads) and ``method`` (mae: decoder 256 wide, ``decoder_depth`` blocks of 8 heads, 90 %
    motion-aware masking, standardised motion target)."""
    from skelmae.models.common import BACKBONES, METHODS, InputSpec
    from skelmae.models.st_mae import MAEConfig, TransformerConfig

    return {
        "input": InputSpec.of("ntu25", ["x", "y", "z"], 120).to_dict(),
        "backbone": BACKBONES.describe("transformer", TransformerConfig(segment=4, dim=256, depth=8, heads=8)),
        "method": METHODS.describe("mae", MAEConfig(
            decoder_dim=256, decoder_depth=decoder_depth, decoder_heads=8, mask="motion", ratio=0.9,
            target="motion", norm_target=True,
        )),
    }


def classifier_backbone(name: str = PAPER_BACKBONE) -> tuple[dict[str, Any], dict[str, Any]]:
    """(input, backbone) of the fine-tuning and inference benchmarks: the paper's transformer
    (:func:`paper_mae_args`, drop path 0.1), or the registered backbone ``name`` with its
    default config (the published network) on the same input. Refuses an unknown name
    (listing the registered ones) and a backbone without parameters, which has nothing to time."""
    from skelmae.errors import SkelmaeError
    from skelmae.models.build import build_backbone
    from skelmae.models.common import BACKBONES, InputSpec

    paper = paper_mae_args()
    if name == PAPER_BACKBONE:
        backbone = paper["backbone"]
        return paper["input"], {**backbone, "config": {**backbone["config"], "drop_path": 0.1}}
    backbone = BACKBONES.describe(name, BACKBONES.config(name))
    encoder = build_backbone(backbone, InputSpec.from_dict(paper["input"]))
    if not any(p.requires_grad for p in encoder.parameters()):
        others = ", ".join(n for n in BACKBONES.names() if n != name)
        raise SkelmaeError(f"backbone {name!r} has no parameters: nothing to fine-tune or time; choose one of {others}")
    return paper["input"], backbone


def synthesise_ntu_like(
    out: Path, samples: int, seed: int = 0, classes: int = 120, persons: float = NTU60_TWO_PERSON_FRACTION
) -> float:
    """An NTU-shaped dataset (2 person slots, 25 joints, lengths ~ N(80, 35) in [32, 300]) of
    random poses, a fraction ``persons`` of the clips with a second person; returns the size
    of its frames in GB."""
    from skelmae.data.storage import DatasetWriter

    rng = np.random.default_rng(seed)
    pool = rng.normal(size=(300, 2, 25, 3)).astype(np.float32)
    lengths = np.clip(rng.normal(80, 35, samples), 32, 300).astype(np.int64)
    second = rng.permutation(samples) < two_person_samples(samples, persons)
    with DatasetWriter(out, "ntu25", ["x", "y", "z"], 2, [f"class {i}" for i in range(classes)], name="synthetic-ntu") as w:
        for i, length in enumerate(lengths):
            start = int(rng.integers(0, 300 - length + 1))
            clip = pool[start : start + length].copy()
            clip[:, 1] *= second[i]
            w.add(clip, i % classes, f"s{i:06d}")
        w.add_split("train", range(samples))
    return (out / "frames.npy").stat().st_size / 1e9


def explicit_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
    """softmax(QK^T / sqrt(d)) V with the score matrix materialised: the A/B baseline of
    the fused ``scaled_dot_product_attention`` (no mask or dropout, as the model uses it)."""
    scores = (q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5
    return scores.softmax(-1) @ v


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[], Any], steps: int, warmup: int, device: torch.device) -> float:
    """Seconds per call after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    _sync(device)
    started = time.perf_counter()
    for _ in range(steps):
        fn()
    _sync(device)
    return (time.perf_counter() - started) / steps


def matmul_flops_per_second(device: torch.device, dtype: torch.dtype, budget_s: float = 1.0) -> float:
    """Dense square matmul rate of this process (the MFU denominator): the size doubles from
    256 while a product takes under an eighth of ``budget_s`` (a CPU without bf16 units
    emulates bf16 hundreds of times slower than fp32), then is timed over about ``budget_s``."""
    largest = 8192 if device.type == "cuda" else 2048
    n = 128
    once = 0.0
    while n < largest and once < budget_s / 8:
        n *= 2
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        once = _timed(lambda: a @ b, steps=1, warmup=1, device=device)
    steps = max(1, min(10, int(budget_s / max(once, 1e-6))))
    return 2 * n**3 / _timed(lambda: a @ b, steps=steps, warmup=0, device=device)


def _count_flops(fn: Callable[[], Any]) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def _peak_memory_gib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def paper_contrastive_args(method: str) -> dict[str, Any]:
    """The published NTU recipe of a contrastive method: ``input`` (NTU layout, x/y/z, the
    recipe's window), ``backbone``, ``method`` and ``optim`` (the recipe's OptimConfig)."""
    from skelmae.config import PretrainConfig, chosen, load_config
    from skelmae.models.common import InputSpec

    cfg = load_config(PretrainConfig, f"recipes/{method}_pretrain")
    return {
        "input": InputSpec.of("ntu25", ["x", "y", "z"], cfg.data.window).to_dict(),
        "backbone": chosen(cfg.model), "method": chosen(cfg.method), "optim": cfg.optim,
    }


def _model_step(spec: BenchSpec, device: torch.device, rank_batch: int) -> tuple[Callable[[], Any], Callable[[], Any]]:
    """(step, counted): ``step`` is what is timed; ``counted`` is its FLOP-counted form
    (uncompiled, no optimizer update, which adds no matmul FLOPs)."""
    from skelmae.config import OptimConfig
    from skelmae.engine.optim import build_optimizer, param_groups
    from skelmae.models.build import build_classifier, build_method
    from skelmae.models.common import InputSpec, PretrainMethod

    paper = paper_contrastive_args(spec.stage) if spec.stage in CONTRASTIVE else paper_mae_args(spec.decoder_depth)
    if spec.stage in BACKBONE_STAGES:
        paper["input"], paper["backbone"] = classifier_backbone(spec.backbone)
    inputs = InputSpec.from_dict(paper["input"])
    generator = torch.Generator(device).manual_seed(0)
    views = (2,) if spec.stage in CONTRASTIVE else ()
    x = torch.randn(rank_batch, *views, inputs.in_channels, inputs.num_frames, inputs.num_joints, 2, device=device)
    x[two_person_samples(rank_batch, spec.persons):, ..., 1] = 0
    y = torch.randint(0, 60, (rank_batch,), device=device)
    if spec.stage in CONTRASTIVE:
        model = build_method(paper["method"], paper["backbone"], inputs).to(device).train()
        loss_of = lambda net: net(x).loss  # noqa: E731
    elif spec.stage in ("pretrain", "ddp"):
        model = build_method(paper["method"], paper["backbone"], inputs).to(device).train()
        loss_of = lambda net: net(x, generator).loss  # noqa: E731
    else:  # fine-tuning: the classifier backbone and the MLP head on 60 classes
        model = build_classifier(paper["backbone"], {"name": "mlp", "config": {}}, inputs, 60).to(device)
        model.train(spec.stage == "finetune")
        loss_of = lambda net: torch.nn.functional.cross_entropy(net(x).float(), y)  # noqa: E731
    net: torch.nn.Module = model
    if spec.stage == "ddp" and torch.distributed.is_initialized():
        net = torch.nn.parallel.DistributedDataParallel(model)
    if spec.compile:
        net = torch.compile(net)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=spec.bf16)

    if spec.stage == "inference":
        def forward() -> Any:
            with torch.inference_mode(), autocast:
                return net(x)

        def counted() -> Any:
            # with autograd on: the FLOP counter's module tracker fails in inference mode on a
            # parameter passed to a submodule's forward (CTR-GCN's topologies); same forward FLOPs
            with autocast:
                return model(x)

        return forward, counted

    # MAMP's pre-training AdamW (the schema has no recipe defaults: lr and betas are set here),
    # or the contrastive recipe's SGD
    optim = paper.get("optim") or OptimConfig(lr=1e-3, betas=[0.9, 0.95], weight_decay=0.05)
    optimizer = build_optimizer(optim, param_groups(model, optim.weight_decay), device)
    after_step = model.after_optimizer_step if isinstance(model, PretrainMethod) else (lambda progress: None)

    def train_step() -> None:
        with autocast:
            loss = loss_of(net)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        after_step(0.5)

    def counted() -> None:
        with autocast:
            loss = loss_of(model)
        loss.backward()
        model.zero_grad(set_to_none=True)

    return train_step, counted


def _measure_model(spec: BenchSpec, device: torch.device) -> dict[str, Any]:
    distributed = torch.distributed.is_initialized()
    world = torch.distributed.get_world_size() if distributed else 1
    step, counted = _model_step(spec, device, spec.batch)
    flops = _count_flops(counted) / spec.batch
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    seconds = _timed(step, spec.steps, spec.warmup, device)
    matmul = matmul_flops_per_second(device, torch.bfloat16 if spec.bf16 else torch.float32)
    samples_per_s = spec.batch * world / seconds
    profiled = {"top_ops": _profile(step, spec, device)} if spec.profile else {}
    return {
        **profiled,
        "step_ms": round(seconds * 1e3, 1),
        "samples_per_s": round(samples_per_s, 2),
        "gflop_per_sample": round(flops / 1e9, 2),
        "achieved_gflop_per_s": round(flops * samples_per_s / 1e9, 1),
        "matmul_gflop_per_s": round(matmul * world / 1e9, 1),
        "mfu_percent": round(100 * flops * samples_per_s / (matmul * world), 1),
    }


def _profile(step: Callable[[], Any], spec: BenchSpec, device: torch.device, steps: int = 2) -> str:
    """Records ``steps`` steps, writes the op table and the Chrome trace under ``spec.profile``
    and returns the three ops with most self time, with their shares of it."""
    from torch.profiler import ProfilerActivity, profile

    from skelmae.atomic import atomic_output, write_text_atomic

    cuda = device.type == "cuda"
    with profile(activities=[ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])) as prof:
        for _ in range(steps):
            step()
        _sync(device)
    events = prof.key_averages()
    self_time = (lambda e: e.self_device_time_total) if cuda else (lambda e: e.self_cpu_time_total)  # noqa: E731
    out = Path(spec.profile)
    out.mkdir(parents=True, exist_ok=True)
    name = f"{spec.stage}-b{spec.batch}{'-bf16' if spec.bf16 else ''}{'-reference' if spec.reference else ''}"
    sort = "self_device_time_total" if cuda else "self_cpu_time_total"
    write_text_atomic(out / f"{name}.txt", events.table(sort_by=sort, row_limit=40) + "\n")
    with atomic_output(out / f"{name}.trace.json") as tmp:
        prof.export_chrome_trace(str(tmp))
    total = sum(self_time(e) for e in events) or 1.0
    top = sorted(events, key=self_time, reverse=True)[:3]
    return ", ".join(f"{e.key} {100 * self_time(e) / total:.0f} %" for e in top)


def _measure_loader(spec: BenchSpec) -> dict[str, Any]:
    from skelmae.data.dataset import SeededSampler, SkeletonDataset
    from skelmae.data.storage import SkeletonStore
    from skelmae.data.transforms import build_transforms

    samples = int(spec.extra.get("samples", 2048))
    with tempfile.TemporaryDirectory(prefix="skelmae-bench-") as work:
        synthesise_ntu_like(Path(work) / "ds", samples)
        store = SkeletonStore(Path(work) / "ds")
        dataset = SkeletonDataset(store, "train", build_transforms(store.layout, window=120, train=True))
        loader = torch.utils.data.DataLoader(
            dataset, batch_size=spec.batch, sampler=SeededSampler(len(dataset)), num_workers=spec.workers,
            persistent_workers=spec.workers > 0, drop_last=True,
        )
        iterator = iter(loader)
        next(iterator)  # worker start-up is not throughput: the first batch is not counted
        started, seen = time.perf_counter(), 0
        for x, _ in iterator:
            seen += x.shape[0]
        seconds = time.perf_counter() - started
    return {"samples_per_s": round(seen / seconds, 1), "samples": seen}


def _measure_matmul(device: torch.device) -> dict[str, Any]:
    fp32, bf16 = (matmul_flops_per_second(device, dtype) for dtype in (torch.float32, torch.bfloat16))
    return {"matmul_fp32_gflop_per_s": round(fp32 / 1e9, 1), "matmul_bf16_gflop_per_s": round(bf16 / 1e9, 1),
            "bf16_over_fp32": float(f"{bf16 / fp32:.3g}")}


def _measure_epoch(spec: BenchSpec) -> dict[str, Any]:
    """``skelmae pretrain`` (NTU60 MAMP preset) for 2 epochs of ``steps`` steps; the second is timed."""
    from skelmae.config import PretrainConfig, load_config
    from skelmae.engine.trainer import Callback
    from skelmae.protocols.pretrain import run_pretrain

    class _EpochClock(Callback):
        """The wall time of each epoch, end to end."""

        def __init__(self) -> None:
            self.ends = [time.perf_counter()]

        def on_epoch_end(self, trainer: Any, record: dict[str, Any]) -> None:
            self.ends.append(time.perf_counter())

    samples = spec.steps * spec.batch
    with tempfile.TemporaryDirectory(prefix="skelmae-bench-") as work:
        synthesise_ntu_like(Path(work) / "ds", samples, persons=spec.persons)
        cfg = load_config(PretrainConfig, "ntu60_xsub/mamp_pretrain", [
            f"data.root={work}/ds", "data.train_split=train", f"data.batch_size={spec.batch}",
            f"data.num_workers={spec.workers}", f"method.mae.decoder_depth={spec.decoder_depth}", "train.epochs=2",
            f"train.device={spec.device}", f"train.bf16={spec.bf16}", f"train.compile={spec.compile}",
            f"train.output_dir={work}/run", "train.progress=false", f"train.threads={spec.threads}",
        ])
        clock = _EpochClock()
        run_pretrain(cfg, callbacks=[clock])
    seconds = clock.ends[2] - clock.ends[1]
    return {"samples_per_s": round(samples / seconds, 2), "epoch_s": round(seconds, 2), "samples": samples}


def run_child(spec: BenchSpec) -> dict[str, Any]:
    """One measurement in this process (the child side of :func:`run_bench`)."""
    from skelmae.models.common import Encoder

    if spec.threads:
        torch.set_num_threads(spec.threads)
    Encoder.skip_absent = not spec.reference  # this process only: every model it builds
    device = torch.device(spec.device)
    rank = 0
    if spec.stage == "ddp" and "WORLD_SIZE" in os.environ:
        torch.distributed.init_process_group("gloo" if device.type == "cpu" else "nccl")
        rank = torch.distributed.get_rank()
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    if spec.attention != "sdpa":  # the A/B baselines of the model's attention
        import skelmae.models.st_mae

        skelmae.models.st_mae.attention = {"fused": torch.nn.functional.scaled_dot_product_attention,
                                            "explicit": explicit_attention}[spec.attention]
    if spec.adamw == "loop":  # the A/B baseline of the fused optimizer kernel
        import skelmae.engine.optim

        skelmae.engine.optim.fused_kwargs = lambda device: {"foreach": False}
    if spec.stage == "loader":
        result = _measure_loader(spec)
    elif spec.stage == "epoch":
        result = _measure_epoch(spec)
    elif spec.stage == "matmul":
        result = _measure_matmul(device)
    else:
        result = _measure_model(spec, device)
    result["peak_memory_gib"] = round(_peak_memory_gib(device), 2)
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    return {**asdict(spec), "rank": rank, "threads_used": torch.get_num_threads(), **result}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawn(spec: BenchSpec, world_size: int = 1) -> dict[str, Any]:
    """Runs ``spec`` in ``world_size`` fresh processes; returns rank 0's result."""
    env = dict(os.environ)
    port = str(_free_port())
    procs = []
    for rank in range(world_size):
        if world_size > 1:
            env.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size),
                       MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "skelmae.bench", json.dumps(asdict(spec))],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(env),
        ))
    outputs = [p.communicate() for p in procs]
    for p, (_, err) in zip(procs, outputs):
        if p.returncode != 0:
            raise RuntimeError(f"benchmark {spec.stage} failed:\n{err[-4000:]}")
    return json.loads(outputs[0][0].strip().splitlines()[-1])


def run_bench(specs: list[BenchSpec], on_result: Callable[[dict[str, Any]], None] = lambda r: None) -> list[dict[str, Any]]:
    """Each spec in fresh processes; ``ddp`` gives two rows: 1 process and 2 processes; a
    ``reference`` spec is measured right after the same spec run skelmae's way, and that row
    gains ``vs_reference``, its samples/s over the reference's; a bf16
    ``compare_fp32`` spec likewise gains ``vs_fp32`` over the same spec in fp32."""
    results = []
    for spec in specs:
        if spec.stage == "ddp":
            single = replace(spec, threads=1)
            rows = [{**_spawn(single), "processes": 1}, {**_spawn(single, world_size=2), "processes": 2}]
            rows[1]["ddp_overhead_ms"] = round(rows[1]["step_ms"] - rows[0]["step_ms"], 1)
        else:
            rows = [{**_spawn(replace(spec, reference=False)), "processes": 1}]
            for wanted, other, key in ((spec.compare_fp32 and spec.bf16, replace(spec, bf16=False, reference=False), "vs_fp32"),
                                       (spec.reference, spec.as_reference(), "vs_reference")):
                if wanted:
                    rows.append({**_spawn(other), "processes": 1})
                    rows[0][key] = round(rows[0]["samples_per_s"] / rows[-1]["samples_per_s"], 2)
        for row in rows:
            on_result(row)
        results.extend(rows)
    return results


if __name__ == "__main__":
    print(json.dumps(run_child(BenchSpec(**json.loads(sys.argv[1])))), flush=True)
