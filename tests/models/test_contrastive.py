"""SkeletonCLR and SkeAttnCLR: momentum update, queue (also across processes), InfoNCE."""

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from skelmae.models.build import build_method
from skelmae.models.common import InputSpec
from skelmae.models.skeletonclr import info_nce

SPEC = InputSpec.of("ntu25", ("x", "y", "z"), 16)
STGCN = {"name": "stgcn", "config": {"channels": 4, "dim": 16}}
TRANSFORMER = {"name": "transformer", "config": {"dim": 16, "depth": 1, "heads": 2}}


def _clr(name="skeletonclr", backbone=STGCN, **cfg):
    torch.manual_seed(0)
    return build_method({"name": name, "config": {"feature_dim": 8, "queue": 12, **cfg}}, backbone, SPEC)


def test_key_encoder_starts_as_a_frozen_copy_and_follows_by_momentum():
    model = _clr(momentum=0.9)
    pairs = list(model.momentum_pairs())
    assert all(torch.equal(q, k) and not k.requires_grad for q, k in pairs)
    with torch.no_grad():
        for q, _ in pairs:
            q.add_(1.0)
    before = [k.clone() for _, k in pairs]
    model.after_optimizer_step(progress=0.5)
    for (q, k), k0 in zip(pairs, before):
        torch.testing.assert_close(k, 0.9 * k0 + 0.1 * q)


def test_cosine_momentum_rises_from_its_start_to_one():
    model = _clr(momentum=0.99, momentum_schedule="cosine")
    assert model.momentum_at(0.0) == pytest.approx(0.99)
    assert model.momentum_at(0.5) == pytest.approx(0.995)
    assert model.momentum_at(1.0) == model.momentum_at(1.2) == pytest.approx(1.0)


def test_queue_is_a_ring_buffer_of_the_newest_keys():
    model = _clr()
    keys = [F.normalize(torch.randn(5, 8), dim=1) for _ in range(3)]
    for k in keys:
        model.enqueue(k)
    assert model.queue_ptr.item() == 15 % 12
    torch.testing.assert_close(model.queue[:3], keys[2][2:])  # the third batch wrapped around
    torch.testing.assert_close(model.queue[3:5], keys[0][3:])  # two keys of the first batch remain
    torch.testing.assert_close(model.queue[5:10], keys[1])
    torch.testing.assert_close(model.queue[10:12], keys[2][:2])
    with pytest.raises(ValueError, match="does not fit a queue of 12"):
        model.enqueue(torch.randn(13, 8))


def test_info_nce_is_the_cross_entropy_of_the_positive():
    q, k, queue = (F.normalize(torch.randn(n, 8), dim=1) for n in (4, 4, 6))
    logits = torch.cat([(q * k).sum(1, keepdim=True), q @ queue.T], dim=1) / 0.07
    torch.testing.assert_close(info_nce(q, k, queue, 0.07), F.cross_entropy(logits, torch.zeros(4, dtype=torch.long)))
    assert info_nce(q[:1], q[:1], -q[:1], 0.07) < 1e-6  # positive identical, the negative opposite
    own = F.normalize(torch.randn(4, 8), dim=1)
    with_own = torch.cat([logits[:, :1], (q * own).sum(1, keepdim=True) / 0.07, logits[:, 1:]], dim=1)
    torch.testing.assert_close(info_nce(q, k, queue, 0.07, own_negative=own),
                               F.cross_entropy(with_own, torch.zeros(4, dtype=torch.long)))


def test_attention_mask_is_soft_per_token_and_channel():
    model = _clr("skeattnclr", heads=4)
    tokens = torch.randn(3, 10, 16)
    mask = model.attention_mask(tokens)
    assert mask.shape == tokens.shape and ((mask > 0) & (mask < 1)).all()
    feats = torch.randn(2, 1, 10, 16)
    ones = torch.ones_like(feats)
    global_, salient, other = model.parts(feats, ones, model.projector.eval())
    torch.testing.assert_close(global_, salient)  # the whole feature is salient under an all-ones mask


def test_mu_weighs_salient_against_non_salient_terms():
    x = torch.randn(4, 2, 3, 16, 25, 1)
    losses = {}
    for mu in (0.0, 0.5, 1.0):
        model = _clr("skeattnclr", mu=mu, heads=4)
        losses[mu] = model(x).loss.item()
    assert losses[0.5] == pytest.approx((losses[0.0] + losses[1.0]) / 2, rel=1e-4)
    with pytest.raises(ValueError, match="0 <= mu <= 1"):
        _clr("skeattnclr", mu=1.5)


@pytest.mark.parametrize("name", ["skeletonclr", "skeattnclr"])
@pytest.mark.parametrize("backbone", [STGCN, TRANSFORMER], ids=["stgcn", "transformer"])
def test_forward_takes_two_views_and_trains_only_the_query_side(name, backbone):
    model = _clr(name, backbone)
    assert model.views == 2
    x = torch.randn(4, 2, 3, 16, 25, 2)
    out = model(x)
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    out.loss.backward()
    assert all(p.grad is None for p in [*model.key_encoder.parameters(), *model.key_projector.parameters()])
    assert all(p.grad is not None for p in model.encoder.parameters() if p.requires_grad)
    assert model.queue_ptr.item() == 4  # one global key per clip


def _enqueue_worker(rank: int, world_size: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    model = _clr()
    keys = torch.full((3, 8), float(rank + 1))
    model.enqueue(keys)
    torch.save({"queue": model.queue, "ptr": model.queue_ptr}, os.path.join(out_dir, f"rank{rank}.pt"))
    dist.destroy_process_group()


def test_keys_of_every_process_enter_the_queue_once(tmp_path):
    mp.spawn(_enqueue_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    queues = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    for q in queues:
        assert q["ptr"].item() == 6
        assert q["queue"][:3].eq(1.0).all() and q["queue"][3:6].eq(2.0).all()  # rank order, no duplicates
    torch.testing.assert_close(queues[0]["queue"], queues[1]["queue"])
