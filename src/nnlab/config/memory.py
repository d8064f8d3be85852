"""How much memory a run will need, and how much the machine has: asked before anything is
built, so that `model.hidden=[200000,200000]` is refused in one line instead of dying in a
MemoryError after its run was created.

The estimate counts what a run of nnlab's MLPs holds at its peak, for the chosen precision,
backend and optimizer. It is a floor (Python objects, allocator slack and the libraries'
own memory are not itemised), plus a fixed allowance for the training stack itself.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

GIB = 1024**3
MIB = 1024**2
# torch + Lightning + MLflow + matplotlib loaded, measured as resident memory on this kind of
# machine (~450 MiB); rounded up.
STACK_BYTES = 512 * MIB
BYTES_PER_VALUE = {32: 4, 64: 8}
# Per-parameter state each torch optimizer keeps (tensors the size of the weights).
OPTIMIZER_STATE = {
    "sgd": 0,  # +1 with momentum
    "adam": 2,
    "adamw": 2,
    "rmsprop": 1,  # +1 with momentum
    "adagrad": 1,
    "adadelta": 2,
    "asgd": 1,
    "adamax": 2,
    "nadam": 2,
    "radam": 2,
    "adafactor": 0,  # factored: a row and a column per matrix, not a copy of it
}
# A training step keeps, per layer and sample, the pre-activation and the activation for the
# backward pass, and builds a gradient of the same size during it.
ACTIVATION_COPIES = 3
# Data: the float64 arrays drawn (features and targets), the standardised copy, the splits.
DATA_COPIES_FLOAT64 = 3


@dataclass(frozen=True)
class MemoryEstimate:
    parameters_bytes: int  # weights, gradients and optimizer state
    activations_bytes: int  # the largest batch's forward and backward
    data_bytes: int
    stack_bytes: int = STACK_BYTES

    @property
    def total(self) -> int:
        return self.parameters_bytes + self.activations_bytes + self.data_bytes + self.stack_bytes

    def largest_part(self) -> str:
        """'parameters', 'activations' or 'data': what to make smaller first."""
        parts = {
            "parameters": self.parameters_bytes,
            "activations": self.activations_bytes,
            "data": self.data_bytes,
        }
        return max(parts, key=parts.get)


def parameter_count(sizes: list[int]) -> int:
    """Weights and biases of an MLP with these layer sizes (input, hidden..., output)."""
    return sum((n_in + 1) * n_out for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=False))


def estimate_run_memory(
    sizes: list[int],
    n_samples: int,
    n_train: int,
    batch_size: int | None,
    eval_rows: int,
    precision: int,
    optimizer: str,
    momentum: float,
    weight_copies: int = 0,
) -> MemoryEstimate:
    width = BYTES_PER_VALUE[precision]
    per_parameter = 2 + OPTIMIZER_STATE.get(optimizer, 2) + (1 if momentum else 0)
    per_parameter += weight_copies  # a backend's own arrays beside torch's (nnlab.backends)
    parameters = parameter_count(sizes) * per_parameter * width
    train_rows = min(batch_size or n_train, n_train)
    training = ACTIVATION_COPIES * train_rows * sum(sizes[1:]) * width
    # Evaluation holds two layers' outputs at a time for a chunk of rows, and all outputs.
    evaluation = eval_rows * 2 * max(sizes) * width
    data = n_samples * (sizes[0] + 1) * (DATA_COPIES_FLOAT64 * 8 + width)
    return MemoryEstimate(parameters, max(training, evaluation), data)


def available_memory() -> int | None:
    """Bytes this process can still use: the machine's available memory, or the cgroup's
    remaining limit when that is lower (containers, SLURM jobs). None if unknown."""
    candidates = []
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                candidates.append(int(line.split()[1]) * 1024)
    cgroup = Path("/sys/fs/cgroup")
    try:
        limit = (cgroup / "memory.max").read_text().strip()
        if limit != "max":
            used = int((cgroup / "memory.current").read_text().strip())
            candidates.append(max(int(limit) - used, 0))
    except (OSError, ValueError):
        pass
    if not candidates and hasattr(os, "sysconf"):
        with contextlib.suppress(OSError, ValueError):
            candidates.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    return min(candidates) if candidates else None


def human_bytes(n: float) -> str:
    if n >= GIB:
        return f"{n / GIB:.1f} GiB"
    return f"{n / MIB:.0f} MiB" if n >= MIB else f"{n / 1024:.0f} KiB"
