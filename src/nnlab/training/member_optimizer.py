"""Members with their own optimizer hyperparameters (a sweep's jobs trained as one population).

The stacked network keeps one leaf tensor per layer (members, ...), which one backward fills
with every member's gradient. `torch.optim` takes one lr (one momentum, one betas) per
parameter group, so each member gets its own group over its own *views* of the stacked
tensors: a Parameter made from `stacked.data[a:b]` shares its memory, so the optimizer stepping
that group updates those members' slices in place. Before each step a hook hands every view
its slice of the stacked gradient. Member k's step is then the very step its plain run
takes (same optimizer, same hyperparameters, same elementwise arithmetic), and every optimizer
nnlab offers works.

The cost: one optimizer call per group and step (consecutive members with the same settings,
a job's repeats, share a group); the forward and backward stay one batched call
(BENCHMARKS.md section 11: 8 groups cost 22% against one at full batch). So SGD, Adam and
AdamW, with the default `trainer.optimizer_kernel=fused`, step instead as one call with their
hyperparameters stacked, one per member (nnlab.training.stacked_optimizers); with `foreach`,
chosen to keep plain runs' own arithmetic, they keep torch's optimizer and its groups.

An optimizer that looks across a tensor's elements (Adafactor factors a weight's second moment
over its rows and columns; nnlab.config.choices.ELEMENTWISE_OPTIMIZERS lists those that do not)
would mix members that share a tensor. It gets one group per member, over `stacked.data[k]`: each
member's own layer shapes, (out, in) and (out,), exactly as a network of its own has them.
"""

from __future__ import annotations

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from nnlab.config.member_keys import optimizer_settings
from nnlab.training.stacked_optimizers import can_stack, stacked_optimizer, with_defaults


def per_member_optimizer(members: list[DictConfig], kernel: dict, each_alone: bool = False):
    """make_optimizer(stacked parameters) for members whose optimizer settings differ: the
    stacked form of SGD, Adam or AdamW with a fused kernel, else one
    parameter group per run of consecutive members with the same settings (a sweep's job and
    its repeats are consecutive), so 4 learning rates x 5 seeds step as 4 groups, not 20.
    `each_alone`: one group per member, over its own layer shapes (a non-elementwise
    optimizer)."""
    target = members[0].optimizer._target_
    # Every group names every setting: one left out would take member 0's, the constructor's.
    settings = with_defaults(target, [optimizer_settings(m) for m in members])
    if kernel.get("fused") and not each_alone and can_stack(target, settings):
        return lambda params: stacked_optimizer(target, params, settings)
    segments = []  # (first member, one past the last, their settings)
    for k, these in enumerate(settings):
        if segments and segments[-1][2] == these and not each_alone:
            segments[-1][1] = k + 1
        else:
            segments.append([k, k + 1, these])

    def own_view(tensor: torch.Tensor, a: int, b: int) -> torch.Tensor:
        return tensor[a] if each_alone else tensor[a:b]

    def make_optimizer(params) -> torch.optim.Optimizer:
        stacked = list(params)
        views = [
            [torch.nn.Parameter(own_view(p.data, a, b)) for p in stacked] for a, b, _ in segments
        ]
        groups = [
            {"params": segment_views, **these}
            for (_, _, these), segment_views in zip(segments, views, strict=True)
        ]
        optimizer = instantiate(members[0].optimizer)(groups, **kernel)

        def share_gradients(_optimizer, _args, _kwargs) -> None:
            for i, p in enumerate(stacked):
                grad, p.grad = p.grad, None  # the views hold it now; the next backward starts anew
                for (a, b, _), segment_views in zip(segments, views, strict=True):
                    segment_views[i].grad = None if grad is None else own_view(grad, a, b)

        optimizer.register_step_pre_hook(share_gradients)
        return optimizer

    return make_optimizer


def member_l1(members: list[DictConfig], dtype) -> float | torch.Tensor:
    """The L1 weight: one number when the members share it, else one per member (members,)."""
    values = [float(m.model.l1) for m in members]
    if all(v == values[0] for v in values):
        return values[0]
    return torch.tensor(values, dtype=dtype)
