"""Check a composed config before anything is built or logged.

Each rule names a key, tests its value, and says what is allowed, so a mistyped override gets
one line: `data.n_samples=-5: must be an integer >= 1`. Only light imports here (NumPy-level
tables), so a bad config is rejected in well under a second.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from nnlab import backends
from nnlab.config.memory import available_memory, estimate_run_memory, human_bytes
from nnlab.data.csv_format import DECIMAL_CHOICES, DELIMITER_CHOICES, ENCODING_CHOICES
from nnlab.data.csv_table import TASK_CHOICES
from nnlab.data.datasets import DATASETS, MULTICLASS, REGRESSION, DatasetSpec
from nnlab.data.splits import CSV, EVAL_CHUNK, dataset_spec, n_rows, split_sizes
from nnlab.nn.scratch import ACTIVATIONS, INITS
from nnlab.nn.tasks import ALL_METRIC_KEYS, TASKS

PRECISIONS = (32, 64)
PROGRESS_MODES = ("auto", "bar", "lines", "none")
OPTIMIZER_KERNELS = ("fused", "foreach")
# Every optimizer nnlab trains with: `optimizer._target_` -> its short name. The first seven
# have a file in conf/optimizer/; the others are set with optimizer._target_=torch.optim.<Name>.
OPTIMIZERS = {
    "torch.optim.SGD": "sgd",
    "torch.optim.Adam": "adam",
    "torch.optim.AdamW": "adamw",
    "torch.optim.RMSprop": "rmsprop",
    "torch.optim.Adagrad": "adagrad",
    "torch.optim.Adadelta": "adadelta",
    "torch.optim.ASGD": "asgd",
    "torch.optim.Adamax": "adamax",
    "torch.optim.NAdam": "nadam",
    "torch.optim.RAdam": "radam",
    "torch.optim.Adafactor": "adafactor",
}
# Those whose step acts on each element of a parameter alone (with scalars shared by every
# element: lr, betas, the step count), so that on stacked members (nnlab.training.engine) they
# are N independent optimizers; each is tested against plain runs
# (tests/training/test_population.py). Any other steps each member of a population alone, over
# its own layer shapes (nnlab.training.member_optimizer).
ELEMENTWISE_OPTIMIZERS = tuple(list(OPTIMIZERS)[:7])
# Those torch gives a fused step (one kernel for every tensor; trainer.optimizer_kernel).
FUSED_OPTIMIZERS = (
    "torch.optim.SGD",
    "torch.optim.Adam",
    "torch.optim.AdamW",
    "torch.optim.Adagrad",
)


FIXED_TABLES = ("iris", CSV)  # datasets with a fixed number of rows (n_samples: null = all)


class ConfigError(ValueError):
    """A config value that nnlab cannot run; its message is the one line the user sees.
    `key`: the config key it names, when there is one."""

    def __init__(self, message: str, key: str | None = None):
        super().__init__(message)
        self.key = key


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


INT64_MAX = 2**63 - 1
MAX_REPEATS = 1000
SEED_MAX = 2**32 - 1  # NumPy's legacy seeding and Lightning's seed_everything take 0..2**32-1
MAX_EXPERIMENT_NAME = 500  # MLflow's limit
MAX_RUN_NAME = 250


def int_in(low: int, high: int = INT64_MAX, why: str = "") -> tuple[Callable[[Any], bool], str]:
    """An integer (not a float, not a bool) in [low, high]; the default high is what int64
    holds, since every size ends up in a NumPy or torch int64."""
    top = "2**63-1" if high == INT64_MAX else str(high)
    return (lambda v: _is_int(v) and low <= v <= high), (
        f"must be an integer from {low} to {top}{why}"
    )


def int_at_least(low: int) -> tuple[Callable[[Any], bool], str]:
    return int_in(low)


def positive_number() -> tuple[Callable[[Any], bool], str]:
    return (
        lambda v: _is_number(v) and v > 0 and v == v and v != float("inf"),
        "must be a finite number > 0",
    )


def non_negative_number() -> tuple[Callable[[Any], bool], str]:
    return (lambda v: _is_number(v) and 0 <= v < float("inf"), "must be a finite number >= 0")


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
    return (lambda v: _is_number(v) and 0 < v < 1), "must be a number in (0, 1)"


def optional(rule) -> tuple[Callable[[Any], bool], str]:
    test, allowed = rule
    return (lambda v: v is None or test(v)), f"{allowed}, or null"


def widths() -> tuple[Callable[[Any], bool], str]:
    return (
        lambda v: isinstance(v, list) and all(_is_int(w) and 1 <= w <= INT64_MAX for w in v),
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
        lambda v: v == "auto" or (_is_int(v) and 0 <= v <= 64),
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


def _fail(key: str, value: Any, allowed: str) -> None:
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
    from hydra.core.hydra_config import HydraConfig

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
        _fail(key, value, allowed)


def check_config(cfg: DictConfig, written: dict[str, str] | None = None) -> None:
    """Raise ConfigError naming the first key whose value nnlab cannot run, or DataError
    (from nnlab.data.csv_table) for a CSV file that cannot be trained on. `written`: as in
    check_rules."""
    plain = OmegaConf.to_container(cfg, resolve=True)
    check_rules(cfg, RULES, written)
    if plain["data"]["name"] == CSV:
        check_rules(cfg, CSV_RULES, written)
    spec = dataset_spec(cfg.data)  # reads and checks a CSV file
    _check_data(plain["data"], spec)
    _check_backend(plain)
    _check_optimizer(plain["optimizer"])
    if plain["seed"] + plain["repeats"] - 1 > SEED_MAX:  # the last member's seed
        _fail("repeats", plain["repeats"], f"seed + repeats - 1 must be at most {SEED_MAX}")
    if plain["repeats"] > 1 and plain["resume"]:
        _fail("repeats", plain["repeats"], "resume= continues one run: allowed with it: 1")
    task = TASKS[spec.task]
    loss = plain["model"]["loss"]
    if loss != "auto" and loss not in task.losses:
        allowed = ", ".join(["auto", *task.losses])
        _fail("model.loss", loss, f"for a {task.name} dataset allowed: {allowed}")
    backend = backends.get(plain["backend"]["name"])
    if task.resolve_loss(loss) not in backend.losses:
        allowed = ", ".join(backend.losses)
        _fail("model.loss", loss, f"the {backend.name} backend supports: {allowed}")
    if plain["objective"] not in ["train/loss", *task.keys("val"), *task.keys("test")]:
        allowed = ", ".join(["train/loss", *task.keys("val")])
        _fail("objective", plain["objective"], f"for a {task.name} dataset allowed: {allowed}")
    if (plain["trainer"].get("early_stopping") or {}).get("patience") is not None and plain[
        "objective"
    ].startswith("test/"):
        _fail(
            "objective",
            plain["objective"],
            "trainer.early_stopping watches the objective every epoch: allowed with it: "
            f"train/loss, {', '.join(task.keys('val'))}",
        )
    _check_memory(plain, spec)


def _check_data(data: dict, spec: DatasetSpec) -> None:
    n = data.get("n_samples")
    if spec.name in FIXED_TABLES:
        size = n_rows(_as_cfg(data, n_samples=None))
        test, _ = optional(int_at_least(1))
        if not test(n) or (n is not None and n > size):
            _fail(
                "data.n_samples",
                n,
                f"{spec.name} has {size} rows: an integer in [1, {size}], or null for all",
            )
        n = n or size
    elif not int_at_least(1)[0](n):
        _fail("data.n_samples", n, int_at_least(1)[1])
    if spec.task == MULTICLASS and spec.fixed_classes is None:
        test, allowed = int_in(2)
        if not test(data.get("n_classes")):
            _fail("data.n_classes", data.get("n_classes"), allowed)
    if data["val_fraction"] + data["test_fraction"] >= 1:
        _fail(
            "data.val_fraction",
            data["val_fraction"],
            "data.val_fraction + data.test_fraction must be < 1 "
            f"(data.test_fraction={data['test_fraction']})",
        )
    _check_split_sizes(n, data, spec)


def _check_split_sizes(n: int, data: dict, spec: DatasetSpec) -> None:
    """Every split must be able to measure its task: at least one sample per class in each
    (two points for regression, which R^2 needs); the training split at least two samples.
    Whether each class actually lands in each split is checked on the data (nnlab.data.splits)."""
    need = max(spec.n_outputs(data.get("n_classes")), 2)
    fractions = data["val_fraction"], data["test_fraction"]

    def enough(rows: int) -> bool:
        n_train, n_val, n_test = split_sizes(rows, *fractions)
        return min(n_train, n_val, n_test) >= need

    if enough(n):
        return
    n_train, n_val, n_test = split_sizes(n, *fractions)
    smallest = min(("training", n_train), ("val", n_val), ("test", n_test), key=lambda s: s[1])
    what = f"{need} classes" if spec.task != REGRESSION else "regression (R^2 needs 2 points)"
    minimum = next((rows for rows in range(n, n + 100 * need + 1000) if enough(rows)), None)
    hint = f": use data.n_samples >= {minimum}" if minimum else ""
    if spec.name in FIXED_TABLES and minimum and minimum > n_rows(_as_cfg(data, n_samples=None)):
        hint = ": the table is too small for these split fractions"
    _fail(
        "data.n_samples",
        data.get("n_samples") if data.get("n_samples") is not None else n,
        f"gives a {smallest[0]} split of {smallest[1]} sample(s), too few for {what} "
        f"with data.val_fraction={fractions[0]} and data.test_fraction={fractions[1]}{hint}",
    )


def _as_cfg(data: dict, **changes) -> DictConfig:
    return OmegaConf.create({**data, **changes})


def _check_memory(plain: dict, spec: DatasetSpec) -> None:
    """Refuse a run whose estimated peak memory exceeds what the machine has available."""
    data = plain["data"]
    n = data["n_samples"] if data["n_samples"] is not None else n_rows(_as_cfg(data))
    n_train, n_val, n_test = split_sizes(n, data["val_fraction"], data["test_fraction"])
    sizes = [spec.n_features, *plain["model"]["hidden"], spec.n_outputs(data.get("n_classes"))]
    estimate = estimate_run_memory(
        sizes,
        n_samples=n,
        n_train=n_train,
        batch_size=data["batch_size"],
        eval_rows=min(max(n_val, n_test), EVAL_CHUNK),
        precision=plain["trainer"]["precision"],
        optimizer=OPTIMIZERS[plain["optimizer"]["_target_"]],
        momentum=plain["optimizer"].get("momentum", 0) or 0,
        weight_copies=backends.get(plain["backend"]["name"]).weight_copies,
    )
    available = available_memory()
    if available is None or estimate.total <= available:
        return
    key, value = {
        "parameters": ("model.hidden", plain["model"]["hidden"]),
        "activations": ("data.batch_size", data["batch_size"]),
        "data": ("data.n_samples", n),
    }[estimate.largest_part()]
    _fail(
        key,
        value,
        f"the run would need about {human_bytes(estimate.total)} of memory "
        f"(weights, gradients and optimizer state {human_bytes(estimate.parameters_bytes)}, "
        f"activations {human_bytes(estimate.activations_bytes)}, "
        f"data {human_bytes(estimate.data_bytes)}, libraries {human_bytes(estimate.stack_bytes)})"
        f", but {human_bytes(available)} is available: make it smaller",
    )


def _check_backend(plain: dict) -> None:
    """What the chosen backend declares it supports (nnlab.backends), and its extra."""
    backend = backends.get(plain["backend"]["name"])
    for key, value, supported in (
        ("trainer.accelerator", plain["trainer"]["accelerator"], backend.accelerators),
        ("trainer.precision", plain["trainer"]["precision"], backend.precisions),
        ("model.activation", plain["model"]["activation"], backend.activations),
    ):
        if value not in supported:
            allowed = ", ".join(map(str, supported))
            _fail(key, value, f"the {backend.name} backend supports: {allowed}")
    missing = backend.missing_extra()
    if missing:
        _fail("backend", backend.name, missing)


def _check_optimizer(opt: dict) -> None:
    if "momentum" in opt and not (_is_number(opt["momentum"]) and 0 <= opt["momentum"] < 1):
        _fail("optimizer.momentum", opt["momentum"], "must be a number in [0, 1)")
