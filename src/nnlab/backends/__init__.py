"""The backends, as plug-ins: each is one module here plus one config in conf/backend/.

`backend=<name>` picks `conf/backend/<name>.yaml`, and that picks `nnlab.backends.<name>`.
Importing a backend module is cheap, since its framework is imported only when a network is
built (`nnlab.lazy`). So the config check can read what every backend declares,
without importing any framework:

- `ACTIVATIONS` and `LOSSES`: name -> that framework's function. Their keys are what the
  backend supports; the two tables sit side by side, so a missing one shows.
- `ACCELERATORS` and `PRECISIONS`: the `trainer.accelerator` and `trainer.precision` values it
  runs with.
- `WEIGHT_COPIES`: arrays the size of the weights it holds beside torch's Parameters, their
  .grad and the optimizer's state (for the memory estimate).
- `EXTRA`: the pip extra that brings its framework (None: nnlab's own dependencies), and
  `REQUIRES`, the module that extra installs.
- `network(sizes, activation, init, seed, dtype, **options)`: the network as a torch
  nn.Module, starting from `nnlab.nn.scratch.init_params`. `options` are the config's other keys
  (e.g. `jit`).
- optionally `population_network(member_params, activation, dtype)`: N networks of one shape
  as one, for `repeats=N` (nnlab.training.population); a backend without it trains repeats one by
  one.

Everything else (config check, run, scripts, the `backends` sweep, the agreement tests) reads
this registry.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from functools import cache
from types import ModuleType

from nnlab.paths import CONF_DIR


@dataclass(frozen=True)
class Backend:
    name: str
    summary: str  # the module docstring's first paragraph
    activations: tuple[str, ...]
    losses: tuple[str, ...]
    accelerators: tuple[str, ...]
    precisions: tuple[int, ...]
    weight_copies: int
    extra: str | None
    requires: str | None

    def module(self) -> ModuleType:
        return importlib.import_module(f"{__name__}.{self.name}")

    def missing_extra(self) -> str | None:
        """One line on what to install, or None when the backend's framework is here."""
        if self.requires is None or _installed(self.requires):
            return None
        return (
            f"the {self.name} backend needs {self.requires}, which is not installed: "
            f"install the '{self.extra}' extra (.venv/bin/pip install -c constraints.txt "
            f"-e '.[{self.extra}]')"
        )


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # e.g. blocked by sys.modules[module] = None
        return False


@cache
def registry() -> dict[str, Backend]:
    """Every backend with a config in conf/backend/, by name."""
    backends = {}
    for config in sorted((CONF_DIR / "backend").glob("*.yaml")):
        module = importlib.import_module(f"{__name__}.{config.stem}")
        backends[config.stem] = Backend(
            name=config.stem,
            summary=" ".join((module.__doc__ or "").split("\n\n")[0].split()),
            activations=tuple(module.ACTIVATIONS),
            losses=tuple(module.LOSSES),
            accelerators=tuple(module.ACCELERATORS),
            precisions=tuple(module.PRECISIONS),
            weight_copies=module.WEIGHT_COPIES,
            extra=module.EXTRA,
            requires=module.REQUIRES,
        )
    return backends


def names() -> list[str]:
    return list(registry())


def get(name: str) -> Backend:
    return registry()[name]
