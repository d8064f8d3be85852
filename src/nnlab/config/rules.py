"""The rule of each config key: a test of its value and the words that say what is allowed.

Each rule names a key, tests its value, and says what is allowed, so a mistyped override gets
one line: `data.n_samples=-5: must be an integer >= 1`. `check_rules` applies a table of them,
and says so when Hydra typed a value the user meant as text.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, ListConfig, OmegaConf

from nnlab import backends
from nnlab.config.choices import (
    INT64_MAX,
    MAX_EXPERIMENT_NAME,
    MAX_REPEATS,
    MAX_RUN_NAME,
    OPTIMIZER_KERNELS,
    OPTIMIZERS,
    PRECISIONS,
    PROGRESS_MODES,
    SEED_MAX,
)
from nnlab.data.csv_format import DECIMAL_CHOICES, DELIMITER_CHOICES, ENCODING_CHOICES
from nnlab.data.csv_table import TASK_CHOICES
from nnlab.data.datasets import DATASETS
from nnlab.data.splits import CSV
from nnlab.nn.scratch import ACTIVATIONS, INITS
from nnlab.nn.tasks import ALL_METRIC_KEYS


class ConfigError(ValueError):
    """A config value that nnlab cannot run; its message is the one line the user sees.
    `key`: the config key it names, when there is one."""

    def __init__(self, message: str, key: str | None = None):
        super().__init__(message)
        self.key = key


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def int_in(low: int, high: int = INT64_MAX, why: str = "") -> tuple[Callable[[Any], bool], str]:
    """An integer (not a float, not a bool) in [low, high]; the default high is what int64
    holds, since every size ends up in a NumPy or torch int64."""
    top = "2**63-1" if high == INT64_MAX else str(high)
    return (lambda v: is_int(v) and low <= v <= high), (
        f"must be an integer from {low} to {top}{why}"
    )


def int_at_least(low: int) -> tuple[Callable[[Any], bool], str]:
    return int_in(low)


def positive_number() -> tuple[Callable[[Any], bool], str]:
    return (
        lambda v: is_number(v) and v > 0 and v == v and v != float("inf"),
        "must be a finite number > 0",
    )


def non_negative_number() -> tuple[Callable[[Any], bool], str]:
    return (lambda v: is_number(v) and 0 <= v < float("inf"), "must be a finite number >= 0")


def one_of(options) -> tuple[Callable[[Any], bool], str]:
    options = tuple(options)
    return (
        lambda v: isinstance(v, str | int) and not isinstance(v, bool) and v in options
    ), f"allowed: {', '.join(map(str, options))}"


def boolean() -> tuple[Callable[[Any], bool], str]:
    return (lambda v: isinstance(v, bool)), "allowed: true, false"


def text(max_length: int) -> tuple[Callable[[Any], bool], str]:
    return (
        lambda v: isinstance(v, str) and v.strip() != "" and len(v) <= max_length
    ), f"must be a non-empty name of at most {max_length} characters"


# Stores MLflow 3 can track into (its old ./mlruns file store refuses new runs).
STORE_SCHEMES = ("sqlite:///", "postgresql", "mysql", "mssql", "http://", "https://", "databricks")


def tracking_store() -> tuple[Callable[[Any], bool], str]:
    return (
        lambda v: v is None or (isinstance(v, str) and v.startswith(STORE_SCHEMES)),
        "must be null (the sqlite store in mlruns/) or a tracking URI: sqlite:///path/mlflow.db, "
        "postgresql://..., mysql://..., http(s)://host:port",
    )


def fraction() -> tuple[Callable[[Any], bool], str]:
    return (lambda v: is_number(v) and 0 < v < 1), "must be a number in (0, 1)"


def optional(rule) -> tuple[Callable[[Any], bool], str]:
    test, allowed = rule
    return (lambda v: v is None or test(v)), f"{allowed}, or null"


def widths() -> tuple[Callable[[Any], bool], str]:
    return (
        lambda v: isinstance(v, list) and all(is_int(w) and 1 <= w <= INT64_MAX for w in v),
        "must be a list of integers >= 1, e.g. [10, 5] ([] for a linear model)",
    )


def names() -> tuple[Callable[[Any], bool], str]:
    return (
        lambda v: v is None or (isinstance(v, list) and v and all(isinstance(c, str) for c in v)),
        "must be a list of column names, or null for every column but the target",
    )


RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "seed": int_in(0, SEED_MAX, " (NumPy's seed range)"),
    "seeds.data": optional(int_in(0, SEED_MAX, " (NumPy's seed range)")),
    "seeds.init": optional(int_in(0, SEED_MAX, " (NumPy's seed range)")),
    "seeds.order": optional(int_in(0, SEED_MAX, " (NumPy's seed range)")),
    "repeats": int_in(1, MAX_REPEATS, " (runs per configuration)"),
    "data.name": one_of([*DATASETS, CSV]),
    "data.noise": non_negative_number(),
    "data.batch_size": optional(int_at_least(1)),
    "data.val_fraction": fraction(),
    "data.test_fraction": fraction(),
    "model.hidden": widths(),
    "model.activation": one_of(ACTIVATIONS),
    "model.init": one_of(INITS),
    "model.l1": non_negative_number(),
    "backend.name": one_of(backends.names()),
    "optimizer._target_": one_of(OPTIMIZERS),
    "optimizer.lr": positive_number(),
    "optimizer.weight_decay": non_negative_number(),
    "trainer.max_epochs": int_at_least(1),
    "trainer.precision": one_of(PRECISIONS),
    "trainer.progress": one_of(PROGRESS_MODES),
    "trainer.optimizer_kernel": one_of(OPTIMIZER_KERNELS),
    "trainer.checkpoint_every_s": positive_number(),
    "trainer.population": (
        lambda v: v is True or v is False or v == "auto",
        "allowed: auto, true, false",
    ),
    "trainer.early_stopping.patience": optional(int_at_least(1)),
    "trainer.early_stopping.min_delta": non_negative_number(),
    "tracking.uri": tracking_store(),
    "tracking.experiment": text(MAX_EXPERIMENT_NAME),
    "tracking.run_name": optional(text(MAX_RUN_NAME)),
    "tracking.log_model": boolean(),
    "tracking.log_plots": boolean(),
    "tracking.figure_workers": (
        lambda v: v == "auto" or (is_int(v) and 0 <= v <= 64),
        "allowed: auto, or a number of worker processes from 0 to 64",
    ),
    "tracking.skip_finished": boolean(),
    "tracking.watch": boolean(),
    "tracking.watch_every": int_at_least(1),
    "resume": optional((lambda v: isinstance(v, str) and v.isalnum(), "a run id")),
    "objective": one_of(ALL_METRIC_KEYS),
}
# Keys only the csv dataset has.
CSV_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "data.path": (lambda v: isinstance(v, str) and v.strip() != "", "the path of a CSV file"),
    "data.target": (
        lambda v: isinstance(v, str) and v.strip() != "",
        "the name of the target column",
    ),
    "data.task": one_of(TASK_CHOICES),
    "data.dropna": boolean(),
    "data.features": names(),
    "data.categorical": (lambda v: v == "auto" or v is False, "allowed: auto, false"),
    "data.delimiter": one_of(DELIMITER_CHOICES),
    "data.decimal": one_of(DECIMAL_CHOICES),
    "data.encoding": one_of(ENCODING_CHOICES),
}


def fail(key: str, value: Any, allowed: str) -> None:
    shown = "null" if value is None else str(_plain(value))
    if not shown.strip() or not shown.isprintable():
        shown = repr(shown)  # an empty name stays visible, a newline stays on one line
    raise ConfigError(f"{key}={shown}: {allowed}", key)


# How Hydra types an unquoted value, for the message that says so.
def _typed_as(value: Any) -> str | None:
    if value is None:
        return "null (no value)"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return None


def _as_written(key: str, value: Any, written: dict[str, str]) -> str:
    """The text the user wrote for `key` (an override), else the YAML spelling of `value`."""
    if key in written:
        return written[key]
    if value is None:
        return "null"
    return str(value).lower() if isinstance(value, bool) else str(value)


def _written_overrides() -> dict[str, str]:
    """key -> the text of its command-line override, in a Hydra app (else empty)."""

    if not HydraConfig.initialized():
        return {}
    return overrides_as_written(HydraConfig.get().overrides.task)


def overrides_as_written(overrides) -> dict[str, str]:
    written = {}
    for item in overrides:
        key, _, value = str(item).partition("=")
        written[key.lstrip("+~")] = value
    return written


def _plain(value: Any) -> Any:
    """OmegaConf lists and dicts as Python ones, so checks and messages see plain values."""
    if isinstance(value, DictConfig | ListConfig):
        return OmegaConf.to_container(value, resolve=True)
    return value


def check_rules(cfg: DictConfig, rules: dict, written: dict[str, str] | None = None) -> None:
    """Each key of `rules` against its rule. A value Hydra typed (a name that reads as a
    number, a boolean or null) that the rule would take as text gets a line saying so and how
    to quote it. `written`: key -> the text of its override (default: this Hydra app's)."""
    written = _written_overrides() if written is None else written
    for key, (test, allowed) in rules.items():
        value = _plain(OmegaConf.select(cfg, key, default=None))
        if test(value):
            continue
        typed, text = _typed_as(value), _as_written(key, value, written)
        if typed is not None and text.strip("'\"") == text and test(text):
            raise ConfigError(
                f"{key}={text}: Hydra reads {text} as {typed}; quote it to pass it as text: "
                f"{key}='{text}' (in a shell: \"{key}='{text}'\")",
                key,
            )
        fail(key, value, allowed)
