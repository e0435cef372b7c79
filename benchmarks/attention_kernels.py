"""Forward and backward time of the attention kernels at the MAMP transformer's shapes, per
precision: what decides how skelmae's attention runs in bf16 training on a CPU (README,
"Performance").

    python benchmarks/attention_kernels.py [--threads 2] [--repeats 3]

Rows: PyTorch's fused kernel in fp32 and in bf16, skelmae's attention (the fused kernel in
bf16 forward, its backward in fp32 in bf16 training on a CPU), the explicit
softmax(QK^T)V with bf16 matmuls, and the fused bf16 forward with a backward made of bf16
matrix products (a candidate for the model's attention that was measured and not taken;
it lives here as a baseline). Shapes: 12 person sequences x 8 heads, about a
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
from skelmae.models.st_mae import _Bf16AttentionFp32Backward, attention

Kernel = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
SCORE_BYTES_PER_THREAD = 2 << 20  # a group of heads' bf16 scores fits a core's L2 cache


def hi_lo(x: torch.Tensor) -> torch.Tensor:
    """fp32 (..., 1) as two bf16 columns whose sum is x to about 2^-16 relative."""
    hi = x.bfloat16()
    return torch.cat([hi, (x - hi.float()).bfloat16()], -1)


class Bf16MatmulBackward(_Bf16AttentionFp32Backward):
    """The model's fused bf16 forward; a backward of bf16 matrix products, a cache-sized group
    of heads at a time: P = exp(QK^T s - lse) recomputed from the forward's log-sum-exp,
    dS = P (dP - D) with D = rowsum(dO * O). The row offsets -lse and -D enter the products as
    two extra bf16 columns (high and low part), so that exp and dS are one pass each over
    the scores."""

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        q, k, v, out, logsumexp = ctx.saved_tensors
        b, h, n, d = q.shape
        rows, scale = b * h, d ** -0.5
        q, k, v, out, grad = (t.reshape(rows, n, d) for t in (q, k, v, out, grad))
        delta = (grad.float() * out.float()).sum(-1, keepdim=True)
        ones = torch.ones(rows, n, 2, dtype=q.dtype)
        q_scaled, k_scaled = q * scale, k * scale
        q_offset = torch.cat([q_scaled, hi_lo(-logsumexp.reshape(rows, n, 1))], -1)
        grad_offset = torch.cat([grad, hi_lo(-delta)], -1)
        k_ones, v_ones = torch.cat([k, ones], -1), torch.cat([v, ones], -1)
        dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
        group = max(1, torch.get_num_threads() * SCORE_BYTES_PER_THREAD // (n * n * q.element_size()))
        for i in range(0, rows, group):
            g = slice(i, i + group)
            probs = torch.bmm(q_offset[g], k_ones[g].transpose(1, 2)).exp_()
            torch.bmm(probs.transpose(1, 2), grad[g], out=dv[g])
            grad_scores = torch.bmm(grad_offset[g], v_ones[g].transpose(1, 2)).mul_(probs)
            torch.bmm(grad_scores, k_scaled[g], out=dq[g])
            torch.bmm(grad_scores.transpose(1, 2), q_scaled[g], out=dk[g])
        return dq.view(b, h, n, d), dk.view(b, h, n, d), dv.view(b, h, n, d)


KERNELS: dict[str, tuple[Kernel, torch.dtype]] = {
    "fused, fp32": (F.scaled_dot_product_attention, torch.float32),
    "fused, bf16": (F.scaled_dot_product_attention, torch.bfloat16),
    "skelmae attention, bf16": (attention, torch.bfloat16),
    "explicit, bf16 matmuls": (explicit_attention, torch.bfloat16),
    "fused bf16 forward, bf16-matmul backward": (Bf16MatmulBackward.apply, torch.bfloat16),
}
SHAPES = {"decoder (750 tokens)": (12, 8, 750, 32), "encoder, visible (75 tokens)": (12, 8, 75, 32)}


def seconds(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def gradient_error(kernel: Kernel, dtype: torch.dtype, shape: tuple[int, ...]) -> float:
    """The largest relative error (Frobenius) of the q, k, v gradients against fp32 attention."""
    generator = torch.Generator().manual_seed(1)
    exact = [t.requires_grad_() for t in (torch.randn(shape, generator=generator) for _ in range(3))]
    grad = torch.randn(shape, generator=generator)
    F.scaled_dot_product_attention(*exact).backward(grad)
    leaves = [t.detach().to(dtype).requires_grad_() for t in exact]
    kernel(*leaves).backward(grad.to(dtype))
    return max(((t.grad.float() - e.grad).norm() / e.grad.norm()).item() for t, e in zip(leaves, exact))


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
    print("| shape | kernel | forward (no grad) | forward + backward | backward | gradient error |")
    print("|---|---|---|---|---|---|")
    for shape_name, shape in SHAPES.items():
        for name, (kernel, dtype) in KERNELS.items():
            forward, both = measure(kernel, dtype, shape, args.repeats)
            error = gradient_error(kernel, dtype, shape)
            print(f"| {shape_name} | {name} | {forward:.1f} | {both:.1f} | {both - forward:.1f} | {100 * error:.2f} % |",
                  flush=True)


if __name__ == "__main__":
    main()
