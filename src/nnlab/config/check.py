"""Check a composed config before anything is built or logged: each key against its rule
(nnlab.config.rules), then what only the whole config decides (split sizes, the backend's
support, the loss for the task, memory).

Only light imports here (NumPy-level tables), so a bad config is rejected in well under a
second.
"""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from nnlab import backends
from nnlab.config.choices import OPTIMIZERS, SEED_MAX
from nnlab.config.memory import available_memory, estimate_run_memory, human_bytes
from nnlab.config.rules import (
    CSV_RULES,
    RULES,
    check_rules,
    fail,
    int_at_least,
    int_in,
    is_number,
    optional,
)
from nnlab.data.datasets import MULTICLASS, REGRESSION, DatasetSpec
from nnlab.data.splits import CSV, EVAL_CHUNK, dataset_spec, n_rows, split_sizes
from nnlab.nn.tasks import TASKS

FIXED_TABLES = ("iris", CSV)  # datasets with a fixed number of rows (n_samples: null = all)


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
        fail("repeats", plain["repeats"], f"seed + repeats - 1 must be at most {SEED_MAX}")
    if plain["repeats"] > 1 and plain["resume"]:
        fail("repeats", plain["repeats"], "resume= continues one run: allowed with it: 1")
    task = TASKS[spec.task]
    loss = plain["model"]["loss"]
    if loss != "auto" and loss not in task.losses:
        allowed = ", ".join(["auto", *task.losses])
        fail("model.loss", loss, f"for a {task.name} dataset allowed: {allowed}")
    backend = backends.get(plain["backend"]["name"])
    if task.resolve_loss(loss) not in backend.losses:
        allowed = ", ".join(backend.losses)
        fail("model.loss", loss, f"the {backend.name} backend supports: {allowed}")
    if plain["objective"] not in ["train/loss", *task.keys("val"), *task.keys("test")]:
        allowed = ", ".join(["train/loss", *task.keys("val")])
        fail("objective", plain["objective"], f"for a {task.name} dataset allowed: {allowed}")
    if (plain["trainer"].get("early_stopping") or {}).get("patience") is not None and plain[
        "objective"
    ].startswith("test/"):
        fail(
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
            fail(
                "data.n_samples",
                n,
                f"{spec.name} has {size} rows: an integer in [1, {size}], or null for all",
            )
        n = n or size
    elif not int_at_least(1)[0](n):
        fail("data.n_samples", n, int_at_least(1)[1])
    if spec.task == MULTICLASS and spec.fixed_classes is None:
        test, allowed = int_in(2)
        if not test(data.get("n_classes")):
            fail("data.n_classes", data.get("n_classes"), allowed)
    if data["val_fraction"] + data["test_fraction"] >= 1:
        fail(
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
    fail(
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
    fail(
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
            fail(key, value, f"the {backend.name} backend supports: {allowed}")
    missing = backend.missing_extra()
    if missing:
        fail("backend", backend.name, missing)


def _check_optimizer(opt: dict) -> None:
    if "momentum" in opt and not (is_number(opt["momentum"]) and 0 <= opt["momentum"] < 1):
        fail("optimizer.momentum", opt["momentum"], "must be a number in [0, 1)")
