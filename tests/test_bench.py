"""The benchmark harness at the paper configuration, with one tiny step per stage."""

import torch
import torch.nn.functional as F

from skelmae.bench import BenchSpec, explicit_attention, paper_mae_args, run_bench, run_child
from skelmae.models.build import build_method
from skelmae.models.common import InputSpec


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
    (baseline,) = run_bench([BenchSpec(stage="pretrain", batch=2, steps=1, warmup=0, attention="explicit", adamw="loop")])
    assert baseline["attention"] == "explicit" and baseline["samples_per_s"] > 0
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
