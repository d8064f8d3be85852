"""A module imported on first use, so that a backend's tables can name its framework's
functions while `import nnlab.backends.<name>` stays cheap (TensorFlow alone takes ~9 s)."""

from __future__ import annotations

import importlib


class LazyModule:
    """`LazyModule("jax.numpy").tanh` imports jax.numpy then, not before."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attr: str):
        return getattr(importlib.import_module(self._name), attr)

    def __repr__(self) -> str:
        return f"LazyModule({self._name!r})"
