import math

import torch
from torch import nn

from skelmae.config import OptimConfig
from skelmae.engine.optim import build_optimizer, lr_at, param_groups


def test_warmup_then_cosine_to_min():
    cfg = OptimConfig(lr=1e-3, min_lr=5e-4, warmup_epochs=20)
    assert lr_at(0, cfg, 400) == 0
    assert math.isclose(lr_at(10, cfg, 400), 5e-4)
    assert math.isclose(lr_at(20, cfg, 400), 1e-3)
    assert math.isclose(lr_at(210, cfg, 400), 7.5e-4)
    assert math.isclose(lr_at(400, cfg, 400), 5e-4)


def test_step_schedule():
    cfg = OptimConfig(lr=0.1, warmup_epochs=5, schedule="step", milestones=[90, 100])
    assert math.isclose(lr_at(2.5, cfg, 110), 0.05)
    assert [round(lr_at(e, cfg, 110), 6) for e in (5, 89.9, 90, 100, 109)] == [0.1, 0.1, 0.01, 0.001, 0.001]


def test_no_weight_decay_on_biases_and_norms():
    model = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4))
    groups = param_groups(model, 0.05)
    decayed = [p for g in groups if g["weight_decay"] > 0 for p in g["params"]]
    assert len(decayed) == 1 and decayed[0] is model[0].weight
    opt = build_optimizer(OptimConfig(lr=1e-3, betas=[0.9, 0.95]), groups, torch.device("cpu"))
    assert isinstance(opt, torch.optim.AdamW) and opt.defaults["betas"] == (0.9, 0.95)


def test_layer_decay_scales():
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    groups = param_groups(model, 0.0, layer_of=lambda n: int(n.split(".")[0]), num_layers=1, layer_decay=0.5)
    scales = sorted(g["lr_scale"] for g in groups)
    assert scales == [0.5, 0.5, 1.0, 1.0]  # weight and bias groups per layer


def test_fused_adamw_matches_the_reference_loop():
    """The fused kernel build_optimizer picks is an optimisation only: same parameters."""
    torch.manual_seed(0)
    reference = nn.Sequential(nn.Linear(8, 16), nn.LayerNorm(16), nn.Linear(16, 4))
    fused = nn.Sequential(nn.Linear(8, 16), nn.LayerNorm(16), nn.Linear(16, 4))
    fused.load_state_dict(reference.state_dict())
    cfg = OptimConfig(name="adamw", lr=1e-2, weight_decay=0.05)
    optimizers = [
        torch.optim.AdamW(param_groups(reference, cfg.weight_decay), lr=cfg.lr, betas=tuple(cfg.betas), foreach=False),
        build_optimizer(cfg, param_groups(fused, cfg.weight_decay), torch.device("cpu")),
    ]
    x, y = torch.randn(32, 8), torch.randn(32, 4)
    for _ in range(20):
        for model, optimizer in zip((reference, fused), optimizers):
            optimizer.zero_grad()
            nn.functional.mse_loss(model(x), y).backward()
            optimizer.step()
    for a, b in zip(reference.parameters(), fused.parameters()):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
