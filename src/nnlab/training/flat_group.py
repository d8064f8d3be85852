"""A parameter group's tensors laid end to end in one flat tensor, so that an elementwise
optimizer steps them with one kernel an operation instead of one a tensor.

A stacked optimizer (nnlab.training.stacked_optimizers) makes ~10 `torch._foreach_*` calls a
step, and on a CPU each call is a loop over its tensors, ~2.5 us a kernel: over the six
tensors of a 3-layer population, ~60 kernels a step. Flat, it is ~10.

- The parameters stay the module's own Parameters (autograd, checkpoints and the figures see
  nothing new); their storage becomes a view of `params`, so updating `params` in place
  updates them.
- Their gradients, fresh from each backward, are laid end to end once a step (one `cat`).
- The optimizer's state is flat too (`state`); each parameter's own state holds views of it,
  so a checkpoint saves and loads it tensor by tensor as before.
- A per-member value (an lr per member) becomes each element's member's value through
  `member_of`, one gather, where it was a (members, 1, ...) view per tensor: the same number
  multiplies the same element, so the step is unchanged to the bit.

Anything that replaces a parameter's storage (`module.to(device)`, a checkpoint loaded into
a new optimizer) is noticed by `holds`, and the group is laid out anew.
"""

from __future__ import annotations

import torch


class FlatGroup:
    def __init__(self, params: list[torch.Tensor], state: dict):
        self.sizes = [p.numel() for p in params]
        self.params = torch.cat([p.detach().reshape(-1) for p in params])
        for p, view in zip(params, self._views(self.params, params), strict=True):
            p.data = view
        # each element's member: parameters are stacked (members, ...)
        self.member_of = torch.cat(
            [torch.arange(p.shape[0]).repeat_interleave(p[0].numel()) for p in params]
        ).to(self.params.device)
        self.state: dict[str, torch.Tensor] = {}
        names = {k for p in params for k, v in state.get(p, {}).items() if _per_element(v, p)}
        for name in names:  # a loaded checkpoint's state: flattened too
            self.state[name] = torch.cat([state[p][name].reshape(-1) for p in params])
        self.share(params, state)

    def _views(self, flat: torch.Tensor, params: list[torch.Tensor]) -> list[torch.Tensor]:
        pieces = flat.split(self.sizes)
        return [piece.view_as(p) for piece, p in zip(pieces, params, strict=True)]

    def gradients(self, params: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat([p.grad.reshape(-1) for p in params])

    def holds(self, params: list[torch.Tensor], state: dict) -> bool:
        """Whether the parameters and their state are still views of this group's tensors."""
        start = self.params.data_ptr()
        size = self.params.element_size()
        offset = 0
        for p, n in zip(params, self.sizes, strict=True):
            if p.data_ptr() != start + offset * size:
                return False
            offset += n
        first = state.get(params[0], {})
        return all(
            name in first and first[name].data_ptr() == flat.data_ptr()
            for name, flat in self.state.items()
        )

    def share(self, params: list[torch.Tensor], state: dict) -> None:
        """Each parameter's state as views of the flat state (new entries after a first step)."""
        for name, flat in self.state.items():
            first = state.get(params[0], {}).get(name)
            if first is not None and first.data_ptr() == flat.data_ptr():
                continue
            for p, view in zip(params, self._views(flat, params), strict=True):
                state.setdefault(p, {})[name] = view


def _per_element(value, p: torch.Tensor) -> bool:
    return isinstance(value, torch.Tensor) and value.shape == p.shape
