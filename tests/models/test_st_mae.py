import pytest
import torch
import torch.nn.functional as F

from skelmae.errors import ConfigError
from skelmae.models.build import build_classifier, build_method, encoder_state, load_encoder_weights
from skelmae.models.common import BACKBONES, HEADS, METHODS, InputSpec, fold_persons
from skelmae.models.heads import LinearClassifier, LinearHeadConfig, LinearProbeHead, MLPClassifier, MLPHeadConfig
from skelmae.models.masking import STRATEGIES
from skelmae.models.st_mae import (
    MAEConfig, SkeletonEncoder, SkeletonMAE, TransformerConfig, attention, masked_mse, motion_target, patchify,
)

SPEC = InputSpec.of("ntu25", ["x", "y", "z"], 16)
BACKBONE = dict(segment=4, dim=32, depth=2, heads=4)
DECODER = dict(decoder_dim=16, decoder_depth=1, decoder_heads=2)


def _mae(frames=16, **method):
    torch.manual_seed(0)
    spec = SPEC.with_frames(frames)
    return SkeletonMAE(SkeletonEncoder(spec, TransformerConfig(**BACKBONE)), spec, MAEConfig(**{**DECODER, **method}))


def test_patchify_token_layout():
    seq = torch.arange(2 * 8 * 3 * 2, dtype=torch.float32).reshape(2, 8, 3, 2)  # B T V C
    p = patchify(seq, 4)
    assert p.shape == (2, 2, 3, 8)
    # token (segment 1, joint 2) holds frames 4..7 of joint 2, frame-major then channel
    assert torch.equal(p[0, 1, 2], seq[0, 4:8, 2].reshape(-1))
    with pytest.raises(ValueError, match="not a multiple"):
        patchify(seq[:, :6], 4)


def test_fold_persons_keeps_persons_of_a_sample_adjacent():
    x = torch.randn(2, 3, 8, 25, 2)
    folded = fold_persons(x)
    assert folded.shape == (4, 8, 25, 3)
    assert torch.equal(folded[1], x[0, :, :, :, 1].permute(1, 2, 0))


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_output_shapes_and_exact_visible_count(strategy):
    model = _mae(mask=strategy, ratio=0.9)
    seen = []
    model.encoder.blocks[0].register_forward_hook(lambda m, i, o: seen.append(i[0].shape))
    x = torch.randn(3, 3, 16, 25, 2)
    out = model(x)
    n_tokens = 4 * 25
    assert out.pred.shape == out.target.shape == (6, n_tokens, 12)
    assert out.mask.shape == (6, n_tokens) and torch.isfinite(out.loss)
    assert seen == [torch.Size([6, int(n_tokens * (1 - 0.9)), 32])]  # encoder sees visible tokens only
    assert (out.mask.sum(1) == n_tokens - int(n_tokens * (1 - 0.9))).all()


def test_masked_tokens_never_reach_the_encoder():
    model = _mae(mask="random").eval()
    x = torch.randn(2, 3, 16, 25, 2)
    patches = patchify(fold_persons(x), 4)
    mask = model.choose_mask(patches, torch.Generator().manual_seed(1))
    changed = patches.clone().flatten(1, 2)
    masked = mask.mask.bool()
    changed[masked] = torch.randn_like(changed[masked]) * 100
    changed = changed.reshape(patches.shape)
    with torch.no_grad():
        a = model.forward_encoder(patches, mask.ids_keep)
        b = model.forward_encoder(changed, mask.ids_keep)
    assert torch.equal(a, b)
    changed = patches.clone().flatten(1, 2)
    changed[~masked] += 1.0
    with torch.no_grad():
        c = model.forward_encoder(changed.reshape(patches.shape), mask.ids_keep)
    assert not torch.allclose(a, c)


def test_loss_ignores_visible_tokens():
    pred, target = torch.randn(4, 10, 12), torch.randn(4, 10, 12)
    mask = (torch.rand(4, 10) > 0.5).float()
    base = masked_mse(pred, target, mask)
    changed = pred.clone()
    changed[mask == 0] += 5.0
    assert torch.equal(masked_mse(changed, target, mask), base)
    changed[mask == 1] += 5.0
    assert masked_mse(changed, target, mask) > base


def test_forward_loss_is_masked_mse_and_has_no_gradient_from_visible_predictions():
    model = _mae(mask="random")
    out = model(torch.randn(2, 3, 16, 25, 2))
    assert torch.allclose(out.loss, masked_mse(out.pred, out.target, out.mask))
    grad = torch.autograd.grad(out.loss, out.pred)[0]
    assert (grad[out.mask == 0] == 0).all() and (grad[out.mask == 1] != 0).any()


def test_targets():
    seq = torch.randn(2, 8, 25, 3)
    motion = motion_target(seq)
    assert torch.equal(motion[:, :-1], seq[:, 1:] - seq[:, :-1]) and (motion[:, -1] == 0).all()
    raw = _mae(target="coords", norm_target=False, frames=8)
    assert torch.equal(raw.make_target(seq), patchify(seq, 4).flatten(1, 2))
    normed = _mae(target="motion", norm_target=True, frames=8).make_target(seq)
    assert torch.allclose(normed.mean(-1), torch.zeros(2, 50), atol=1e-5)
    assert torch.allclose(normed.var(-1), torch.ones(2, 50), atol=1e-3)


def test_training_step_reduces_loss():
    model = _mae(mask="spatiotemporal", target="coords")
    x = torch.randn(4, 3, 16, 25, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731 - same mask every step
    first = model(x, generator=gen()).loss.item()
    for _ in range(30):
        loss = model(x, generator=gen()).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first


def test_encoder_and_heads():
    enc = SkeletonEncoder(SPEC, TransformerConfig(segment=4, dim=32, depth=2, heads=4))
    x = torch.randn(5, 3, 16, 25, 2)
    feats = enc(x)
    assert feats.shape == (5, 2, 4, 25, 32)
    assert torch.allclose(enc.pooled(x), feats.mean(dim=(1, 2, 3)))
    probe = LinearClassifier(enc, 7)
    assert isinstance(probe.head, LinearProbeHead)
    assert probe(x).shape == (5, 7) and probe.features(x).shape == (5, 32)
    assert not probe.head.norm.affine
    tune = MLPClassifier(enc, 7, MLPHeadConfig(hidden=64))
    assert tune(x).shape == (5, 7) and tune.head.mlp[0].out_features == 64


def test_probe_on_per_joint_features_keeps_the_joints_apart():
    enc = SkeletonEncoder(SPEC, TransformerConfig(segment=4, dim=32, depth=2, heads=4)).eval()
    x = torch.randn(5, 3, 16, 25, 2)
    x[0, ..., 1] = 0  # an absent second person does not count in the person mean
    probe = LinearClassifier(enc, 7, LinearHeadConfig(pool="joints")).eval()
    with torch.no_grad():
        feats, per_joint = enc(x), probe.features(x)
    assert per_joint.shape == (5, 25 * 32)
    torch.testing.assert_close(per_joint[1], feats[1].mean(dim=(0, 1)).flatten())
    torch.testing.assert_close(per_joint[0], feats[0, 0].mean(dim=0).flatten())
    torch.testing.assert_close(per_joint.view(5, 25, 32).mean(dim=1), enc.pooled(x))  # their mean is the usual probe's feature
    assert probe(x).shape == (5, 7) and probe.head(per_joint).shape == (5, 7)
    with pytest.raises(ConfigError, match=r"pool must be one of \('mean', 'joints', 'steps'\), got 'time'"):
        build_classifier({"name": "transformer", "config": {"segment": 4, "dim": 32, "depth": 1, "heads": 4}},
                         {"name": "linear", "config": {"pool": "time"}}, SPEC, 7)


def test_probe_on_per_step_features_keeps_the_steps_apart():
    enc = SkeletonEncoder(SPEC, TransformerConfig(**BACKBONE)).eval()
    x = torch.randn(5, 3, 16, 25, 2)
    x[0, ..., 1] = 0
    probe = LinearClassifier(enc, 7, LinearHeadConfig(pool="steps")).eval()
    with torch.no_grad():
        feats, per_step = enc(x), probe.features(x)
    assert enc.num_steps == 4 and per_step.shape == (5, 4 * 32)
    torch.testing.assert_close(per_step[1], feats[1].mean(dim=(0, 2)).flatten())
    torch.testing.assert_close(per_step[0], feats[0, 0].mean(dim=1).flatten())
    assert probe(x).shape == (5, 7)
    raw = BACKBONES.build("raw", None, SPEC)
    with pytest.raises(ValueError, match="pool=steps needs a backbone whose clip length fixes its feature steps"):
        LinearClassifier(raw, 7, LinearHeadConfig(pool="steps"))


def test_features_of_several_layers_are_each_blocks_normed_output():
    enc = SkeletonEncoder(SPEC, TransformerConfig(segment=4, dim=32, depth=3, heads=4)).eval()
    x = torch.randn(5, 3, 16, 25, 2)
    x[2, ..., 1] = 0
    with torch.no_grad():
        two = enc.layer_features(x, 2)
        tokens = enc.embed_tokens(patchify(fold_persons(x), 4))
        for block in enc.blocks[:2]:
            tokens = block(tokens)
        second = enc.norm(tokens).reshape(5, 2, 4, 25, 32) * enc.present(x)[:, :, None, None, None]
        probe = LinearClassifier(enc, 7, LinearHeadConfig(pool="joints", layers=2)).eval()
        per_joint = probe.features(x)
    assert two.shape == (5, 2, 4, 25, 64)
    torch.testing.assert_close(two[..., 32:], enc(x))  # the last layer, then the one before it
    torch.testing.assert_close(two[..., :32], second)
    assert per_joint.shape == (5, 25 * 64) and probe(x).shape == (5, 7)
    assert LinearClassifier(enc, 7, LinearHeadConfig(layers=3)).features(x).shape == (5, 96)
    with pytest.raises(ValueError, match="layers must be between 1 and the encoder's depth 3, got 4"):
        enc.layer_features(x, 4)
    with pytest.raises(ValueError, match="gives the features of its last layer only, got layers=2"):
        BACKBONES.build("raw", None, SPEC).layer_features(x, 2)
    with pytest.raises(ConfigError, match="layers must be between 1 and 1 for RawClip, got 4"):  # when the probe is built
        build_classifier({"name": "raw", "config": {}}, {"name": "linear", "config": {"layers": 4}}, SPEC, 7)


def test_encoder_layers_for_layer_wise_lr_decay():
    enc = SkeletonEncoder(SPEC, TransformerConfig(**BACKBONE))
    assert enc.num_layers == 3  # embeddings + 2 blocks
    layers = {name: enc.layer_id(name) for name, _ in enc.named_parameters()}
    assert layers["embed.weight"] == layers["temporal_pos"] == layers["spatial_pos"] == 0
    assert layers["blocks.0.attn.qkv.weight"] == 1 and layers["blocks.1.mlp.0.bias"] == 2
    assert layers["norm.weight"] == 3  # on top, with the head


def test_descriptions_build_the_same_models():
    backbone = BACKBONES.describe("transformer", TransformerConfig(**BACKBONE))
    method = METHODS.describe("mae", MAEConfig(**DECODER, mask="random"))
    assert backbone == {"name": "transformer", "config": {**BACKBONE, "mlp_ratio": 4.0, "drop_path": 0.0}}
    built = build_method(method, backbone, SPEC)
    assert isinstance(built, SkeletonMAE) and isinstance(built.encoder, SkeletonEncoder)
    assert built.mask_strategy == "random" and built.decoder_embed.out_features == 16
    # the description's state-dict keys are those of the directly built model (checkpoints stay readable)
    assert built.state_dict().keys() == _mae(mask="random").state_dict().keys()
    built.load_state_dict(_mae(mask="random").state_dict())
    classifier = build_classifier(backbone, HEADS.describe("mlp", MLPHeadConfig(hidden=64)), SPEC, 7)
    load_encoder_weights(classifier.encoder, encoder_state(built.state_dict(), "mae"), "mae")
    assert all(torch.equal(a, b) for a, b in zip(classifier.encoder.state_dict().values(), built.encoder.state_dict().values()))


def test_pretrained_temporal_embedding_is_resampled_for_another_clip_length():
    short = _mae(frames=16).encoder
    longer = SkeletonEncoder(SPEC.with_frames(32), TransformerConfig(**BACKBONE))
    load_encoder_weights(longer, short.state_dict(), "mae")
    assert longer.temporal_pos.shape == (1, 8, 1, 32)
    assert torch.equal(longer.spatial_pos, short.spatial_pos)
    constant = short.state_dict()
    constant["temporal_pos"] = torch.ones_like(constant["temporal_pos"])
    load_encoder_weights(longer, constant, "mae")
    assert torch.allclose(longer.temporal_pos, torch.ones(1, 8, 1, 32))


def test_invalid_configuration():
    with pytest.raises(ValueError, match="mask must be one of"):
        _mae(mask="tube")
    with pytest.raises(ValueError, match="target"):
        _mae(target="velocity")
    with pytest.raises(ValueError, match="not a multiple"):
        _mae(frames=18)
    backbone = {"name": "transformer", "config": BACKBONE}
    with pytest.raises(ConfigError, match="mask must be one of"):
        build_method({"name": "mae", "config": {**DECODER, "mask": "tube"}}, backbone, SPEC)
    with pytest.raises(ConfigError, match="unknown key"):
        build_method({"name": "mae", "config": {"mask_ratio": 0.9}}, backbone, SPEC)  # the old key name
    with pytest.raises(ConfigError, match="model.arch=gin"):
        build_method({"name": "graph_mae", "config": {}}, backbone, SPEC)



def test_bf16_attention_backward_in_fp32_is_closer_to_fp32_than_the_bf16_kernel():
    torch.manual_seed(0)
    q32, k32, v32, g32 = (torch.randn(2, 4, 96, 16) for _ in range(4))

    def grads(fn, dtype):
        q, k, v = (t.to(dtype, copy=True).requires_grad_() for t in (q32, k32, v32))
        out = fn(q, k, v)
        out.backward(g32.to(dtype))
        return out.detach().float(), [t.grad.float() for t in (q, k, v)]

    exact_out, exact = grads(F.scaled_dot_product_attention, torch.float32)
    out, split = grads(attention, torch.bfloat16)
    bf16_out, bf16 = grads(F.scaled_dot_product_attention, torch.bfloat16)
    assert all(g.dtype == torch.float32 for g in split)  # .float() of bf16 leaves' gradients
    torch.testing.assert_close(out, bf16_out)  # the same bf16 forward
    for mine, kernel, ref in zip(split, bf16, exact):
        error = (mine - ref).norm() / ref.norm()
        assert error < 0.01 and error <= 1.05 * (kernel - ref).norm() / ref.norm()
    with torch.no_grad():  # inference and fp32 take the fused kernel itself
        x = q32.bfloat16()
        torch.testing.assert_close(attention(x, x, x), F.scaled_dot_product_attention(x, x, x), rtol=0, atol=0)
