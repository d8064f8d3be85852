"""Property: any override, however wrong, either trains or is refused with one line naming
its key, before any run exists. Drawn by hypothesis over the keys nnlab checks and values of
every wrong kind (types, ranges, names, malformed lists)."""

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf

from nnlab.cli.overrides import check_overrides
from nnlab.config.check import check_config
from nnlab.config.rules import CSV_RULES, RULES, ConfigError
from nnlab.data.datasets import DataError
from nnlab.training.engine import TrainingDiverged
from nnlab.training.run import run_training
from tests.commands import run_cli
from tests.conftest import compose_config

KEYS = sorted(
    {*RULES, *CSV_RULES, "data.n_samples", "data.n_classes", "optimizer.momentum"} - {"resume"}
)
NAMES = [
    "relu",
    "tanh",
    "moons",
    "iris",
    "csv",
    "sgd",
    "torch",
    "numpy",
    "he",
    "mse",
    "bce",
    "auto",
    "binary",
    "regression",
    "val/loss",
    "val/acc",
    "banana",
    "cpu",
    "target",
]

# The whole range of each type: integers far beyond int64, floats from denormal to huge,
# floats where integers belong, text in any script (and empty), lists nested and malformed.
scalars = st.one_of(
    st.integers(-(10**6), 10**6),
    st.integers(-(2**70), 2**70),
    st.sampled_from([0, 1, 2, 3, 32, 64, -1, 2**32, 2**63, 10**20, -(2**63) - 1]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 0.5, 0.99, 1.0, 1.5, 2.0, 32.0, -0.5, 1e-9, 1e9, 5e-324, 1e308]),
    st.sampled_from(NAMES),
    st.text(max_size=12),
    st.sampled_from(["", " ", "é", "日本", "🙂", "a b", "'", '"', "\\", "${oc.env:HOME}"]),
    st.booleans(),
    st.none(),
)
lists = st.recursive(
    st.lists(st.one_of(st.integers(-3, 40), st.floats(-5, 50), st.sampled_from(NAMES))),
    lambda inner: st.lists(inner, max_size=3),
    max_leaves=6,
)
MALFORMED = st.sampled_from(["[1,2", "1,2]", "[,]", "[[", "]", "[1,,2]", "{a:1}", "[a=1]", "=="])
values = st.one_of(scalars, lists)


def hydra_text(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value != value:
        return "nan"
    if isinstance(value, float) and value in (float("inf"), float("-inf")):
        return "inf" if value > 0 else "-inf"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ",".join(hydra_text(v) for v in value) + "]"
    return str(value)


@pytest.fixture(scope="module")
def small_csv(tmp_path_factory):
    """A real table (wine, 3 classes) for `data=csv` examples."""
    from sklearn.datasets import load_wine

    path = tmp_path_factory.mktemp("csv") / "wine.csv"
    load_wine(as_frame=True).frame.to_csv(path, index=False)
    return path


def runs(uri):
    client = MlflowClient(uri)
    return [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]


def group_of(key: str) -> str:
    return key.split(".")[0]


def first_key_named(message: str, keys) -> str | None:
    """The config key a refusal names first (as `key=value`, `'key'`, ...)."""
    found = [
        (m.start(), k)
        for k in keys
        if (m := re.search(rf"(?<![\w.+]){re.escape(k)}(?![\w])", message)) is not None
    ]
    return min(found)[1] if found else None


# `make test` runs the "ci" profile: derandomized, the same examples on every run, so CI is
# reproducible. `make fuzz` runs the "fuzz" profile: random, many more examples
# (tests/conftest.py registers both).
# Two halves by dataset, each with half the profile's examples: the same search, on two
# workers instead of one (it was the suite's longest test).
@pytest.mark.parametrize(
    "datasets", [("moons", "iris", "blobs"), ("sine", "csv")], ids=["classification", "other"]
)
@settings(
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    max_examples=max(1, settings.default.max_examples // 2),
)
@given(key=st.sampled_from(KEYS), value=st.one_of(values, MALFORMED), pick=st.integers(0, 2))
def test_any_override_runs_or_gets_one_line_naming_its_key(
    store, small_csv, datasets, key, value, pick
):
    data = datasets[pick % len(datasets)]
    override = f"{key}={hydra_text(value)}"
    base = [f"data={data}"]
    if data in ("iris", "csv"):  # fixed tables: all their rows
        base.append("data.n_samples=null")
    if data == "csv":
        base += [f"data.path={small_csv}", "data.target=target"]
    before = {r.info.run_id for r in runs(store)}  # the store is shared by every example
    # The CLI's order: Hydra parses and composes (a key this dataset lacks, a value Hydra
    # cannot read), then nnlab checks the values (a CSV file's problems are DataError).
    problem = check_overrides([*base, override])
    try:
        if problem is not None:
            raise ConfigError(problem)
        cfg = compose_config(*base, override)
        check_config(cfg)
    except (ConfigError, DataError) as err:
        message = str(err)
        assert "\n" not in message
        # It names the drawn key, or (when the value makes another setting of its group
        # invalid, e.g. data.name=moons on top of iris's n_samples=null) the key that became
        # wrong; the configuration without the override is valid, so the override caused it.
        named = first_key_named(message, {*KEYS, key})
        broke = named == key or (named is not None and group_of(named) == group_of(key))
        assert broke, (override, message)
        check_config(compose_config(*base))
        assert {r.info.run_id for r in runs(store)} == before  # refused before any run
        return
    # Accepted: it must train. Keep it tiny (the accepted value itself stays in the config
    # unless it only sets how long or how big the run is).
    small = OmegaConf.merge(
        cfg, {"trainer": {"max_epochs": 1}, "tracking": {"log_plots": False, "log_model": False}}
    )
    if data not in ("iris", "csv") and (small.data.n_samples or 0) > 200:
        small.data.n_samples = 200
    if any(width > 64 for width in small.model.hidden):  # only how big: keep the run quick
        small.model.hidden = [min(width, 64) for width in small.model.hidden]
    try:
        result = run_training(small)
    except TrainingDiverged:
        # A value can be valid and still make training blow up (lr=1e300, model.l1=3e38,
        # found by `make fuzz`): that is a result, recorded as a FAILED run with its reason.
        (new,) = [r for r in runs(store) if r.info.run_id not in before]
        assert new.info.status == "FAILED" and "TrainingDiverged" in new.data.tags["nnlab.error"]
    else:
        (new,) = [r for r in runs(store) if r.info.run_id not in before]
        assert new.info.run_id == result.run_id and new.info.status == "FINISHED"


@pytest.mark.parametrize(
    "override, starts",
    [
        ("model.hidden=[1,2", "bad override: model.hidden=[1,2: cannot be parsed"),
        ("optimizer.lr=", "bad config: optimizer.lr='': must be"),
        ("data=mnist", "bad override: data=mnist: allowed: "),
        ("model.nonexistent=3", "bad override: Could not override 'model.nonexistent'"),
    ],
)
def test_malformed_or_unknown_overrides_get_one_line(store, override, starts):
    proc = run_cli("nnlab-train", override, "trainer.max_epochs=1")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"nnlab-train: {starts}"), lines[0]
    assert runs(store) == []
