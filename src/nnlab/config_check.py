"""Check a composed config before anything is built or logged.

Each rule names a key, tests its value, and says what is allowed, so a mistyped override gets
one line: `data.n_samples=-5: must be an integer >= 1`. Only light imports here (NumPy-level
tables), so a bad config is rejected in well under a second.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from nnlab.data import DATASETS, IRIS_SIZE, MULTICLASS, split_sizes
from nnlab.scratch import ACTIVATIONS, INITS
from nnlab.tasks import ALL_METRIC_KEYS, TASKS

BACKENDS = ("torch", "torch_scratch", "numpy")
PRECISIONS = (32, 64)
PROGRESS_MODES = ("auto", "bar", "lines", "none")
OPTIMIZERS = {  # the optimizer group's _target_ values
    "torch.optim.SGD": "sgd",
    "torch.optim.Adam": "adam",
    "torch.optim.AdamW": "adamw",
    "torch.optim.RMSprop": "rmsprop",
    "torch.optim.Adagrad": "adagrad",
    "torch.optim.Adadelta": "adadelta",
    "torch.optim.ASGD": "asgd",
}


class ConfigError(ValueError):
    """A config value that nnlab cannot run; its message is the one line the user sees."""


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def int_at_least(low: int) -> tuple[Callable[[Any], bool], str]:
    return (lambda v: _is_int(v) and v >= low), f"must be an integer >= {low}"


def positive_number() -> tuple[Callable[[Any], bool], str]:
    return (
        lambda v: _is_number(v) and v > 0 and v == v and v != float("inf"),
        "must be a finite number > 0",
    )


def non_negative_number() -> tuple[Callable[[Any], bool], str]:
    return (lambda v: _is_number(v) and 0 <= v < float("inf"), "must be a finite number >= 0")


def one_of(options) -> tuple[Callable[[Any], bool], str]:
    options = tuple(options)
    return (lambda v: v in options), f"allowed: {', '.join(map(str, options))}"


def fraction() -> tuple[Callable[[Any], bool], str]:
    return (lambda v: _is_number(v) and 0 < v < 1), "must be a number in (0, 1)"


def optional(rule) -> tuple[Callable[[Any], bool], str]:
    test, allowed = rule
    return (lambda v: v is None or test(v)), f"{allowed}, or null"


def widths() -> tuple[Callable[[Any], bool], str]:
    return (
        lambda v: isinstance(v, list) and all(_is_int(w) and w >= 1 for w in v),
        "must be a list of integers >= 1, e.g. [10, 5] ([] for a linear model)",
    )


RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "seed": int_at_least(0),
    "data.name": one_of(DATASETS),
    "data.noise": non_negative_number(),
    "data.batch_size": optional(int_at_least(1)),
    "data.val_fraction": fraction(),
    "data.test_fraction": fraction(),
    "model.hidden": widths(),
    "model.activation": one_of(ACTIVATIONS),
    "model.init": one_of(INITS),
    "model.l1": non_negative_number(),
    "backend.name": one_of(BACKENDS),
    "optimizer._target_": one_of(OPTIMIZERS),
    "optimizer.lr": positive_number(),
    "optimizer.weight_decay": non_negative_number(),
    "trainer.max_epochs": int_at_least(1),
    "trainer.precision": one_of(PRECISIONS),
    "trainer.progress": one_of(PROGRESS_MODES),
    "trainer.checkpoint_every_s": positive_number(),
    "resume": optional((lambda v: isinstance(v, str) and v.isalnum(), "a run id")),
    "objective": one_of(ALL_METRIC_KEYS),
}


def _fail(key: str, value: Any, allowed: str) -> None:
    shown = "null" if value is None else str(_plain(value))
    raise ConfigError(f"{key}={shown}: {allowed}")


def _plain(value: Any) -> Any:
    """OmegaConf lists and dicts as Python ones, so checks and messages see plain values."""
    if isinstance(value, DictConfig | ListConfig):
        return OmegaConf.to_container(value, resolve=True)
    return value


def check_config(cfg: DictConfig) -> None:
    """Raise ConfigError naming the first key whose value nnlab cannot run."""
    plain = OmegaConf.to_container(cfg, resolve=True)
    for key, (test, allowed) in RULES.items():
        value = _plain(OmegaConf.select(cfg, key, default=None))
        if not test(value):
            _fail(key, value, allowed)
    _check_data(plain["data"])
    if plain["backend"]["name"] == "numpy" and plain["trainer"]["accelerator"] != "cpu":
        _fail(
            "trainer.accelerator",
            plain["trainer"]["accelerator"],
            "the numpy backend runs on the CPU only: allowed: cpu",
        )
    _check_optimizer(plain["optimizer"])
    spec = DATASETS[plain["data"]["name"]]
    task = TASKS[spec.task]
    loss = plain["model"]["loss"]
    if loss != "auto" and loss not in task.losses:
        allowed = ", ".join(["auto", *task.losses])
        _fail("model.loss", loss, f"for a {task.name} dataset allowed: {allowed}")
    if plain["objective"] not in ["train/loss", *task.keys("val"), *task.keys("test")]:
        allowed = ", ".join(["train/loss", *task.keys("val")])
        _fail("objective", plain["objective"], f"for a {task.name} dataset allowed: {allowed}")


def _check_data(data: dict) -> None:
    spec = DATASETS[data["name"]]
    n = data.get("n_samples")
    if spec.name == "iris":
        test, allowed = optional(int_at_least(1))
        if not test(n) or (n is not None and n > IRIS_SIZE):
            _fail(
                "data.n_samples",
                n,
                f"iris has {IRIS_SIZE} samples: an integer in [1, {IRIS_SIZE}], or null for all",
            )
        n = n or IRIS_SIZE
    elif not int_at_least(1)[0](n):
        _fail("data.n_samples", n, int_at_least(1)[1])
    if spec.task == MULTICLASS and spec.fixed_classes is None:
        test, allowed = int_at_least(2)
        if not test(data.get("n_classes")):
            _fail("data.n_classes", data.get("n_classes"), allowed)
    if data["val_fraction"] + data["test_fraction"] >= 1:
        _fail(
            "data.val_fraction",
            data["val_fraction"],
            "data.val_fraction + data.test_fraction must be < 1 "
            f"(data.test_fraction={data['test_fraction']})",
        )
    n_train, _, _ = split_sizes(n, data["val_fraction"], data["test_fraction"])
    if n_train < 2:
        _fail(
            "data.n_samples",
            n,
            f"leaves {n_train} training samples after the val/test "
            "split: use more samples or smaller fractions",
        )


def _check_optimizer(opt: dict) -> None:
    if "momentum" in opt and not (_is_number(opt["momentum"]) and 0 <= opt["momentum"] < 1):
        _fail("optimizer.momentum", opt["momentum"], "must be a number in [0, 1)")
