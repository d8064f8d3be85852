"""SGD, Adam and AdamW over stacked tensors (members, ...), each member with its own
hyperparameters: one optimizer call steps the whole population whatever its settings.

torch.optim takes one lr (one momentum, one betas) per parameter group, so a population whose
members differ in them can use torch's own optimizers only as one group per setting
(nnlab.training.member_optimizer), each group one more Python pass and kernel call a step:
~50-70 us a group on this machine (fused Adam over 20 members: ~0.1 ms as one group, ~0.24-0.3
ms as 4; BENCHMARKS.md section 11). Here every hyperparameter is a float (shared) or one value
per member, broadcast over the member axis, and each update is ~10 `torch._foreach_*` calls
over all the stacked tensors, however many settings there are: ~0.2 ms.

The arithmetic is torch's, written out (torch/optim/sgd.py, adam.py: the default options,
neither amsgrad nor maximize), in the same order of operations; products with a per-member
factor round apart from torch's fused multiply-adds in the last bit, so member k equals its
plain run to 1e-9 in float64 (tested), not bit for bit (`trainer.optimizer_kernel=foreach` keeps
torch's own optimizers, bit for bit; member_optimizer chooses).
"""

from __future__ import annotations

import inspect

import torch
from hydra.utils import get_class
from torch.optim import optimizer as torch_optimizer

from nnlab.training.flat_group import FlatGroup

Value = float | torch.Tensor  # a hyperparameter: shared by every member, or one per member

# Which optimizers have a stacked form, and the settings it implements: a member config with
# any other (amsgrad, maximize, ...) keeps torch's optimizer, one group per setting.
STACKED_SETTINGS = {
    "torch.optim.SGD": ("lr", "momentum", "dampening", "weight_decay", "nesterov"),
    "torch.optim.Adam": ("lr", "betas", "eps", "weight_decay"),
    "torch.optim.AdamW": ("lr", "betas", "eps", "weight_decay"),
}


def with_defaults(target: str, settings: list[dict], names=()) -> list[dict]:
    """Each member's settings with every key that any member (or `names`) sets: a key a member
    leaves out takes the optimizer's own default, as its plain run does."""
    keys = {k for s in settings for k in s} | set(names)
    signature = inspect.signature(get_class(target)).parameters
    defaults = {k: signature[k].default for k in keys if k in signature}
    return [{**defaults, **s} for s in settings]


def can_stack(target: str, settings: list[dict]) -> bool:
    """Whether the members' settings (member_keys.optimizer_settings) have a stacked form: a
    known optimizer, known settings (any other left at torch's default, e.g. amsgrad=false),
    and one nesterov flag for all (a branch, not a factor)."""
    known = STACKED_SETTINGS.get(target)
    if known is None:
        return False
    signature = inspect.signature(get_class(target)).parameters
    for s in settings:
        others = {k: v for k, v in s.items() if k not in known}
        if any(k not in signature or v != signature[k].default for k, v in others.items()):
            return False
    return len({bool(s.get("nesterov", False)) for s in settings}) == 1


def member_hyperparameters(target: str, settings: list[dict]) -> dict[str, Value]:
    """{name: value} of each scalar setting, betas split in two: a float where every member has
    the same value (a foreach call's scalar, no tensor to broadcast), else a (members,) float64
    tensor."""
    filled = with_defaults(target, settings, STACKED_SETTINGS[target])
    columns = {}
    for name in STACKED_SETTINGS[target]:
        if name == "betas":
            columns["beta1"] = [float(s["betas"][0]) for s in filled]
            columns["beta2"] = [float(s["betas"][1]) for s in filled]
        elif name != "nesterov":
            columns[name] = [float(s[name]) for s in filled]
    return {
        k: v[0] if len(set(v)) == 1 else torch.tensor(v, dtype=torch.float64)
        for k, v in columns.items()
    }


def differs(value: Value) -> bool:
    return isinstance(value, torch.Tensor)


def nonzero(value: Value) -> bool:
    return differs(value) or value != 0


class StackedOptimizer(torch.optim.Optimizer):
    """One parameter group over the stacked tensors; each hyperparameter in it is a float or
    one float64 value per member (member_hyperparameters). Per-member factors are computed in
    float64, as torch computes its Python floats, and cast once to the parameters' dtype.
    group["step"] counts the steps taken."""

    def __init__(self, params, hyperparameters: dict[str, Value], **flags):
        super().__init__(params, {**hyperparameters, **flags, "step": 0})
        self._factors: dict[tuple, Value | list] = {}  # see `factor`
        self._flat: FlatGroup | None = None  # see `stepped`

    # torch wraps every optimizer class's `step` once (Optimizer._patch_step_function) in
    # Optimizer.profile_hook_step, which labels the step for the profiler and runs the step
    # hooks, and zero_grad labels itself too: ~80 us of the issue's ~790 us population step
    # (20 members, batch 32, BENCHMARKS.md section 11). A stacked optimizer is marked as
    # already wrapped and takes torch's wrapper only when it has something to do: a profiler
    # recording, or hooks.
    def step(self, closure=None):
        hooks = (
            self._optimizer_step_pre_hooks,
            self._optimizer_step_post_hooks,
            torch_optimizer._global_optimizer_pre_hooks,
            torch_optimizer._global_optimizer_post_hooks,
        )
        if _profiling() or any(hooks):
            return _wrapped_step(self, closure)
        return self.take_step()

    step.hooked = True  # what _patch_step_function looks for: not wrapped again

    def take_step(self) -> None:
        """One step of every member (each optimizer's own)."""
        raise NotImplementedError

    def zero_grad(self, set_to_none: bool = True) -> None:
        if not set_to_none or _profiling():
            return super().zero_grad(set_to_none)
        for p in self.param_groups[0]["params"]:
            p.grad = None

    def load_state_dict(self, state_dict) -> None:
        super().load_state_dict(state_dict)
        self._factors.clear()  # the loaded hyperparameters replace the group's
        self._flat = None  # the loaded state is tensors of its own: flattened again

    def spread(self, value: Value, params: list[torch.Tensor]) -> float | list[torch.Tensor]:
        """A float as it is; (members,) values as a (members, 1, ...) view per parameter, in its
        dtype, to broadcast over the member's elements (or, for the flat tensor, each element's
        member's value)."""
        if not differs(value):
            return value
        if self._flat is not None and params[0] is self._flat.params:
            return [value.to(params[0].device, params[0].dtype)[self._flat.member_of]]
        cast = value.to(params[0].dtype)
        shaped = {p.dim(): cast.view(-1, *[1] * (p.dim() - 1)) for p in params}
        return [shaped[p.dim()] for p in params]

    def factor(self, name: str, params: list[torch.Tensor], compute) -> float | list:
        """spread(compute(group)), computed once for these parameters: a step spends no tensor
        op on what does not change."""
        key = (name, *map(id, params))
        if key not in self._factors:
            self._factors[key] = self.spread(compute(self.param_groups[0]), params)
        return self._factors[key]

    def with_l2(self, params: list[torch.Tensor], grads: list[torch.Tensor]) -> list:
        """grad + weight_decay * param: weight decay as SGD and Adam take it (L2)."""
        if not nonzero(self.param_groups[0]["weight_decay"]):
            return grads
        decay = self.factor("weight_decay", params, lambda g: g["weight_decay"])
        return torch._foreach_add(grads, torch._foreach_mul(params, decay))

    def stepped(self) -> tuple[list, list, list[dict]]:
        """What a step updates: the group's parameters, their gradients and their states, as
        one flat tensor each (nnlab.training.flat_group: each operation one kernel, not one a
        layer); tensor by tensor, those with a gradient, when some parameter has none."""
        params = self.param_groups[0]["params"]
        if self._flat is None or not self._flat.holds(params, self.state):
            # Flat only where every parameter has a gradient and the same state (a step that
            # skipped some would leave them with less)
            alike = len({frozenset(self.state.get(p, {})) for p in params}) == 1
            has_grads = all(p.grad is not None for p in params)
            self._flat = FlatGroup(params, self.state) if alike and has_grads else None
        if self._flat is None or any(p.grad is None for p in params):
            params = [p for p in params if p.grad is not None]
            return params, [p.grad for p in params], [self.state[p] for p in params]
        return [self._flat.params], [self._flat.gradients(params)], [self._flat.state]

    def share_state(self) -> None:
        """After a step: each parameter's state (what a checkpoint saves) as views of the flat
        state the step created."""
        if self._flat is not None:
            self._flat.share(self.param_groups[0]["params"], self.state)


def undamped(group: dict) -> Value:
    """1 - dampening for the members with momentum. torch keeps no buffer without momentum: a
    zero-momentum member takes its gradient undamped (its buffer is its gradient)."""
    momentum, dampening = group["momentum"], group["dampening"]
    if not differs(momentum):
        return 1 - dampening if momentum != 0 else 1.0
    return 1 - torch.where(momentum == 0, 0.0, torch.as_tensor(dampening, dtype=torch.float64))


class StackedSGD(StackedOptimizer):
    def __init__(self, params, hyperparameters: dict[str, Value], nesterov: bool = False):
        super().__init__(params, hyperparameters, nesterov=nesterov)

    @torch.no_grad()
    def take_step(self) -> None:
        group = self.param_groups[0]
        params, grads, states = self.stepped()
        if not params:
            return
        at = lambda name, compute: self.factor(name, params, compute)  # noqa: E731
        grads = self.with_l2(params, grads)
        if nonzero(group["momentum"]):
            momentum = at("momentum", lambda g: g["momentum"])
            if "momentum_buffer" not in states[0]:  # torch's first step: the gradient itself
                buffers = torch._foreach_add(grads, 0.0)
                for state, buffer in zip(states, buffers, strict=True):
                    state["momentum_buffer"] = buffer
            else:
                buffers = [s["momentum_buffer"] for s in states]
                torch._foreach_mul_(buffers, momentum)
                torch._foreach_add_(buffers, torch._foreach_mul(grads, at("undamped", undamped)))
            if group["nesterov"]:
                grads = torch._foreach_add(grads, torch._foreach_mul(buffers, momentum))
            else:
                grads = buffers
        torch._foreach_sub_(params, torch._foreach_mul(grads, at("lr", lambda g: g["lr"])))
        group["step"] += 1
        self.share_state()


class StackedAdam(StackedOptimizer):
    """Adam, or AdamW with `decoupled=True` (weight decay scales the weights, not the
    gradient)."""

    def __init__(self, params, hyperparameters: dict[str, Value], decoupled: bool = False):
        super().__init__(params, hyperparameters, decoupled=decoupled)

    @torch.no_grad()
    def take_step(self) -> None:
        group = self.param_groups[0]
        params, grads, states = self.stepped()
        if not params:
            return
        at = lambda name, compute: self.factor(name, params, compute)  # noqa: E731
        if "exp_avg" not in states[0]:
            for state, p in zip(states, params, strict=True):
                state["exp_avg"] = torch.zeros_like(p)
                state["exp_avg_sq"] = torch.zeros_like(p)
        group["step"] += 1
        step, lr, beta1, beta2 = group["step"], group["lr"], group["beta1"], group["beta2"]
        if not group["decoupled"]:
            grads = self.with_l2(params, grads)
        elif nonzero(group["weight_decay"]):  # AdamW: param * (1 - lr * weight_decay)
            kept = at("1 - lr * weight_decay", lambda g: 1 - g["lr"] * g["weight_decay"])
            torch._foreach_mul_(params, kept)
        exp_avgs = [s["exp_avg"] for s in states]
        exp_avg_sqs = [s["exp_avg_sq"] for s in states]
        torch._foreach_lerp_(exp_avgs, grads, at("1 - beta1", lambda g: 1 - g["beta1"]))
        torch._foreach_mul_(exp_avg_sqs, at("beta2", lambda g: g["beta2"]))
        if differs(beta2):
            squares = torch._foreach_mul(grads, at("1 - beta2", lambda g: 1 - g["beta2"]))
            torch._foreach_addcmul_(exp_avg_sqs, grads, squares)
        else:
            torch._foreach_addcmul_(exp_avg_sqs, grads, grads, value=1 - beta2)
        # The bias corrections change every step (floats, where the members share the betas).
        correction2 = (1 - beta2**step) ** 0.5
        denominators = torch._foreach_sqrt(exp_avg_sqs)
        torch._foreach_div_(denominators, self.spread(correction2, params))
        torch._foreach_add_(denominators, at("eps", lambda g: g["eps"]))
        updates = torch._foreach_div(exp_avgs, denominators)
        torch._foreach_mul_(updates, self.spread(lr / (1 - beta1**step), params))
        torch._foreach_sub_(params, updates)
        self.share_state()


def _profiling() -> bool:
    return torch.autograd.profiler._is_profiler_enabled


# torch's own wrapper around a stacked step: the profiler's label, the hooks, in torch's order
_wrapped_step = torch.optim.Optimizer.profile_hook_step(
    lambda optimizer, closure=None: optimizer.take_step()
)


def stacked_optimizer(target: str, params, settings: list[dict]) -> torch.optim.Optimizer:
    """The stacked form of `target` over `params` for members with these settings
    (can_stack said yes)."""
    hyperparameters = member_hyperparameters(target, settings)
    if target == "torch.optim.SGD":
        return StackedSGD(params, hyperparameters, nesterov=bool(settings[0].get("nesterov")))
    return StackedAdam(params, hyperparameters, decoupled=target == "torch.optim.AdamW")
