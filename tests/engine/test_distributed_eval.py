"""Evaluation under 2 gloo processes counts every test sample exactly once, also when the
test set does not divide evenly between the processes."""

import os

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from skelmae.config import DataConfig
from skelmae.engine.common import make_loader
from skelmae.engine.distributed import DistInfo, all_gather_variable

SAMPLES = 29  # odd: one rank gets one sample more


class _Indices(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return SAMPLES

    def __getitem__(self, key):
        index, _seed = key
        return torch.tensor([index]), index % 3


def _worker(rank: int, world_size: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    info = DistInfo(rank=rank, world_size=world_size)
    loader = make_loader(_Indices(), DataConfig(batch_size=4, num_workers=0), info, train=False, seed=0)
    seen = torch.cat([x[:, 0] for x, _ in loader])
    gathered = all_gather_variable(seen, info)
    torch.save({"local": seen, "gathered": gathered}, os.path.join(out_dir, f"rank{rank}.pt"))
    dist.destroy_process_group()


def test_every_test_sample_is_counted_once_across_ranks(tmp_path):
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    results = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    assert sorted(len(r["local"]) for r in results) == [14, 15]
    for r in results:
        assert sorted(r["gathered"].tolist()) == list(range(SAMPLES))
