"""Forward and backward time of the attention kernels at the MAMP transformer's shapes, per
precision: what decides how skelmae's attention runs in bf16 training on a CPU (README,
"Performance").

    python benchmarks/attention_kernels.py [--threads 2] [--repeats 3]

Rows: PyTorch's fused kernel in fp32 and in bf16, skelmae's attention (the fused kernel in
bf16 forward, its backward in fp32 in bf16 training on a CPU) and the explicit
softmax(QK^T)V with bf16 matmuls. Shapes: 12 person sequences x 8 heads, about a
pre-training batch of 8 to 12 NTU clips, at the decoder's 750 tokens and the encoder's 75
visible ones, head dimension 32.
"""

from __future__ import annotations

import argparse
import time
from typing import Callable

import torch
import torch.nn.functional as F

from skelmae.bench import explicit_attention
from skelmae.models.st_mae import attention

Kernel = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


KERNELS: dict[str, tuple[Kernel, torch.dtype]] = {
    "fused, fp32": (F.scaled_dot_product_attention, torch.float32),
    "fused, bf16": (F.scaled_dot_product_attention, torch.bfloat16),
    "skelmae attention, bf16": (attention, torch.bfloat16),
    "explicit, bf16 matmuls": (explicit_attention, torch.bfloat16),
}
SHAPES = {"decoder (750 tokens)": (12, 8, 750, 32), "encoder, visible (75 tokens)": (12, 8, 75, 32)}


def seconds(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def measure(kernel: Kernel, dtype: torch.dtype, shape: tuple[int, ...], repeats: int) -> tuple[float, float]:
    """(forward, forward + backward) milliseconds."""
    generator = torch.Generator().manual_seed(0)
    q, k, v, grad = (torch.randn(shape, generator=generator).to(dtype) for _ in range(4))
    with torch.no_grad():
        forward = seconds(lambda: kernel(q, k, v), repeats)
    leaves = [t.requires_grad_() for t in (q, k, v)]

    def step() -> None:
        kernel(*leaves).backward(grad)
        for t in leaves:
            t.grad = None

    return forward * 1e3, seconds(step, repeats) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, milliseconds per call")
    print("| shape | kernel | forward (no grad) | forward + backward | backward |")
    print("|---|---|---|---|---|")
    for shape_name, shape in SHAPES.items():
        for name, (kernel, dtype) in KERNELS.items():
            forward, both = measure(kernel, dtype, shape, args.repeats)
            print(f"| {shape_name} | {name} | {forward:.1f} | {both:.1f} | {both - forward:.1f} |", flush=True)


if __name__ == "__main__":
    main()
