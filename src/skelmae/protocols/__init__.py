"""The protocols: each is one :class:`~skelmae.engine.trainer.Protocol` run by the Trainer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def run_training(
    protocol: str, config: str | None, overrides: Sequence[str] | None, resume: bool = False, callbacks: Sequence = (),
) -> dict[str, Any]:
    """Resolve the configuration of a training protocol (its recipe preset, then ``config``,
    then ``overrides``) and run it: what each training command of the CLI does."""
    from skelmae.config import FinetuneConfig, LinearConfig, PretrainConfig, load_config
    from skelmae.protocols.finetune import RECIPES, run_finetune
    from skelmae.protocols.linear import run_linear
    from skelmae.protocols.pretrain import run_pretrain

    if protocol == "pretrain":
        return run_pretrain(load_config(PretrainConfig, config, list(overrides or [])), resume, list(callbacks))
    if protocol == "linear":
        return run_linear(load_config(LinearConfig, config, list(overrides or [])), resume, list(callbacks))
    cfg = load_config(FinetuneConfig, config, list(overrides or []), preset=RECIPES[protocol])
    return run_finetune(cfg, protocol, resume, list(callbacks))
