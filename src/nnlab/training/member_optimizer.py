"""Members with their own optimizer hyperparameters (a sweep's jobs trained as one population).

The stacked network keeps one leaf tensor per layer (members, ...), which one backward fills
with every member's gradient. `torch.optim` takes one lr (one momentum, one betas) per
parameter group, so each member gets its own group over its own *views* of the stacked
tensors: a Parameter made from `stacked.data[k]` shares its memory, so the optimizer stepping
member k's group updates member k's slice in place. Before each step a hook hands every view
its slice of the stacked gradient. Member k's step is then the very step its plain run
takes (same optimizer, same hyperparameters, same elementwise arithmetic), and every optimizer
nnlab offers works.

The cost: one optimizer call per member and step, as when training one by one; the forward
and backward stay one batched call (BENCHMARKS.md section 11).
"""

from __future__ import annotations

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from nnlab.config.member_keys import optimizer_settings


def per_member_optimizer(members: list[DictConfig], kernel: dict):
    """make_optimizer(stacked parameters) for members whose optimizer settings differ."""

    def make_optimizer(params) -> torch.optim.Optimizer:
        stacked = list(params)
        views = [[torch.nn.Parameter(p.data[k]) for p in stacked] for k in range(len(members))]
        groups = [
            {"params": member_views, **optimizer_settings(m)}
            for m, member_views in zip(members, views, strict=True)
        ]
        optimizer = instantiate(members[0].optimizer)(groups, **kernel)

        def share_gradients(_optimizer, _args, _kwargs) -> None:
            for i, p in enumerate(stacked):
                grad, p.grad = p.grad, None  # the views hold it now; the next backward starts anew
                for k, member_views in enumerate(views):
                    member_views[i].grad = None if grad is None else grad[k]

        optimizer.register_step_pre_hook(share_gradients)
        return optimizer

    return make_optimizer


def member_l1(members: list[DictConfig], dtype) -> float | torch.Tensor:
    """The L1 weight: one number when the members share it, else one per member (members,)."""
    values = [float(m.model.l1) for m in members]
    if all(v == values[0] for v in values):
        return values[0]
    return torch.tensor(values, dtype=dtype)
