"""The benchmark harness at the paper configuration, with one tiny step per stage."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from typer.testing import CliRunner

from skelmae.bench import (
    NTU60_TWO_PERSON_FRACTION, BenchSpec, classifier_backbone, explicit_attention, paper_mae_args, run_bench, run_child,
    synthesise_ntu_like, two_person_samples,
)
from skelmae.cli import app
from skelmae.data.storage import SkeletonStore
from skelmae.errors import ConfigError, SkelmaeError
from skelmae.models.build import build_classifier, build_method
from skelmae.models.common import BACKBONES, InputSpec


def test_explicit_attention_equals_fused_attention():
    q, k, v = (torch.randn(2, 4, 75, 32) for _ in range(3))
    torch.testing.assert_close(explicit_attention(q, k, v), F.scaled_dot_product_attention(q, k, v), atol=1e-5, rtol=1e-5)


def test_paper_configuration():
    paper = paper_mae_args(decoder_depth=5)
    spec, backbone, method = InputSpec.from_dict(paper["input"]), paper["backbone"], paper["method"]
    assert (spec.num_frames, spec.num_joints, spec.in_channels) == (120, 25, 3)
    assert backbone["name"] == "transformer" and method["name"] == "mae"
    encoder = backbone["config"]
    assert (encoder["segment"], encoder["dim"], encoder["depth"], encoder["heads"], encoder["drop_path"]) == (4, 256, 8, 8, 0.0)
    decoder = method["config"]
    assert (decoder["decoder_dim"], decoder["decoder_depth"], decoder["decoder_heads"]) == (256, 5, 8)
    assert (decoder["mask"], decoder["ratio"], decoder["target"], decoder["norm_target"]) == ("motion", 0.9, "motion", True)
    model = build_method(method, backbone, spec)  # the description is what a pre-training checkpoint stores
    assert model.encoder.num_tokens == 750 and len(model.decoder_blocks) == 5


def test_pretraining_counts_fewer_flops_than_fine_tuning():
    common = dict(batch=2, steps=1, warmup=0, threads=1)
    pretrain = run_child(BenchSpec(stage="pretrain", **common))
    finetune = run_child(BenchSpec(stage="finetune", **common))
    inference = run_child(BenchSpec(stage="inference", **common))
    for row in (pretrain, finetune, inference):
        assert row["samples_per_s"] > 0 and row["peak_memory_gib"] > 0 and 0 < row["mfu_percent"] < 100
    # the encoder sees 10 % of the tokens in pre-training; backward costs about twice the forward
    assert pretrain["gflop_per_sample"] < 0.5 * finetune["gflop_per_sample"]
    assert 2.5 < finetune["gflop_per_sample"] / inference["gflop_per_sample"] < 3.5


def test_baselines_loader_and_ddp_rows():
    """Each in fresh processes: the A/B baselines patch torch and skelmae there only."""
    baseline, fused = run_bench([BenchSpec(stage="pretrain", batch=2, steps=1, warmup=0, attention="explicit", adamw="loop"),
                                 BenchSpec(stage="pretrain", batch=2, steps=1, warmup=0, attention="fused")])
    assert baseline["attention"] == "explicit" and baseline["samples_per_s"] > 0
    assert fused["attention"] == "fused" and fused["samples_per_s"] > 0
    loader = run_child(BenchSpec(stage="loader", batch=4, workers=0, extra={"samples": 32}))
    assert loader["samples"] == 32 - 4 and loader["samples_per_s"] > 0
    single, double = run_bench([BenchSpec(stage="ddp", batch=1, steps=1, warmup=1)])
    assert (single["processes"], double["processes"]) == (1, 2)
    assert double["samples_per_s"] > 0 and "ddp_overhead_ms" in double


def test_contrastive_stages_run_the_published_recipes():
    from skelmae.bench import paper_contrastive_args

    clr, attn = paper_contrastive_args("skeletonclr"), paper_contrastive_args("skeattnclr")
    assert clr["input"]["num_frames"] == 50 and attn["input"]["num_frames"] == 64
    assert clr["backbone"]["config"]["channels"] == 16 and attn["backbone"]["config"]["channels"] == 64
    assert clr["method"]["config"]["queue"] == attn["method"]["config"]["queue"] == 32768
    assert clr["optim"].name == "sgd" and clr["optim"].lr == 0.1
    row = run_child(BenchSpec(stage="skeletonclr", batch=2, steps=1, warmup=0, threads=1))
    assert row["samples_per_s"] > 0 and 0 < row["mfu_percent"] < 100


def test_ntu60_two_person_fraction_is_that_of_the_official_metadata(shared_data):
    labels = np.loadtxt(shared_data / "ntu_rgbd_samples" / "sgn_statistics" / "ntu60" / "label.txt", dtype=np.int64)
    assert len(labels) == 56_578
    assert NTU60_TWO_PERSON_FRACTION == pytest.approx(np.mean(labels >= 50), abs=1e-12)  # A50-A60: mutual actions


def test_ntu_like_data_has_the_asked_fraction_of_second_persons(tmp_path):
    assert [two_person_samples(8, f) for f in (0.0, NTU60_TWO_PERSON_FRACTION, 0.5, 1.0)] == [0, 1, 4, 8]
    with pytest.raises(ValueError, match="fraction"):
        two_person_samples(8, 1.5)
    synthesise_ntu_like(tmp_path / "ds", 20, persons=0.25)
    store = SkeletonStore(tmp_path / "ds")
    second = [bool(np.abs(store.sequence(i)[:, 1]).sum() > 0) for i in range(20)]
    assert sum(second) == 5
    assert all(np.abs(store.sequence(i)[:, 0]).sum() > 0 for i in range(20))


def test_reference_mode_computes_every_person_slot():
    ours, reference = run_bench([BenchSpec(stage="inference", batch=4, steps=1, warmup=0, threads=1, persons=0.5, reference=True)])
    assert (ours["reference"], reference["reference"]) == (False, True)
    assert ours["vs_reference"] == pytest.approx(ours["samples_per_s"] / reference["samples_per_s"], rel=0.02)
    # 2 of the 4 samples have a second person: 6 of 8 person slots are computed
    assert ours["gflop_per_sample"] / reference["gflop_per_sample"] == pytest.approx(6 / 8, abs=0.02)
    assert BenchSpec(stage="pretrain", bf16=True, compile=True, adamw="loop").as_reference() == BenchSpec(
        stage="pretrain", reference=True)


def test_epoch_stage_runs_the_whole_pretraining_loop():
    row = run_child(BenchSpec(stage="epoch", batch=2, steps=2, workers=0, threads=1))
    assert row["samples"] == 4 and row["samples_per_s"] > 0 and row["epoch_s"] > 0


def test_matmul_stage_measures_both_precisions():
    row = run_child(BenchSpec(stage="matmul", threads=1))
    assert row["matmul_fp32_gflop_per_s"] > 0 and row["matmul_bf16_gflop_per_s"] > 0
    assert row["bf16_over_fp32"] == pytest.approx(row["matmul_bf16_gflop_per_s"] / row["matmul_fp32_gflop_per_s"], rel=0.05)


def test_classifier_stages_take_any_registered_backbone_at_its_defaults():
    paper_input, paper = classifier_backbone()
    assert paper_input == paper_mae_args()["input"] and paper["name"] == "transformer"
    assert paper["config"] == {**paper_mae_args()["backbone"]["config"], "drop_path": 0.1}  # the default is unchanged
    for name in (n for n in BACKBONES.names() if n != "transformer"):
        if name == "raw":
            with pytest.raises(SkelmaeError, match="backbone 'raw' has no parameters: nothing to fine-tune or time"):
                classifier_backbone(name)
            continue
        inputs, backbone = classifier_backbone(name)
        assert inputs == paper_input and backbone == BACKBONES.describe(name, BACKBONES.config(name))
        build_classifier(backbone, {"name": "mlp", "config": {}}, InputSpec.from_dict(inputs), 60)
    with pytest.raises(ConfigError, match="unknown backbone 'resnet'; expected one of .*freqmixformer"):
        classifier_backbone("resnet")
    # CTR-GCN passes its topologies to submodules, which the FLOP counter cannot follow in inference mode
    inference = run_child(BenchSpec(stage="inference", batch=1, steps=1, warmup=0, threads=1, backbone="ctrgcn"))
    finetune = run_child(BenchSpec(stage="finetune", batch=2, steps=1, warmup=0, threads=1, backbone="gin"))
    for row in (inference, finetune):
        assert row["samples_per_s"] > 0 and 0 < row["mfu_percent"] < 100
    assert (inference["backbone"], finetune["backbone"]) == ("ctrgcn", "gin")


def test_bench_refuses_a_backbone_it_cannot_time():
    runner = CliRunner()
    raw = runner.invoke(app, ["bench", "inference", "--backbone", "raw"])
    assert raw.exit_code == 2 and "backbone 'raw' has no parameters" in raw.output
    unused = runner.invoke(app, ["bench", "pretrain", "--backbone", "stgcn"])
    assert unused.exit_code == 2 and "--backbone applies to the stages ['finetune', 'inference']" in unused.output


def test_bf16_row_against_fp32_and_the_profile_of_its_steps(tmp_path):
    bf16, fp32 = run_bench([BenchSpec(stage="inference", batch=2, steps=1, warmup=0, threads=1, bf16=True,
                                      compare_fp32=True, profile=str(tmp_path))])
    assert (bf16["bf16"], fp32["bf16"]) == (True, False)
    assert bf16["vs_fp32"] == pytest.approx(bf16["samples_per_s"] / fp32["samples_per_s"], rel=0.02)
    table = (tmp_path / "inference-b2-bf16.txt").read_text()
    assert "Self CPU" in table and "aten::" in table
    assert (tmp_path / "inference-b2-bf16.trace.json").stat().st_size > 0
    assert (tmp_path / "inference-b2.txt").is_file()  # the fp32 row is profiled too
    shares = [float(part.rsplit(" ", 2)[1]) for part in bf16["top_ops"].split(", ")]
    assert len(shares) == 3 and shares == sorted(shares, reverse=True) and 0 < sum(shares) <= 100
    refused = CliRunner().invoke(app, ["bench", "pretrain", "--vs-fp32"])
    assert refused.exit_code == 2 and "--vs-fp32 compares bf16 with fp32: add --bf16" in refused.output
