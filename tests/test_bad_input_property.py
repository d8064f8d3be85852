"""Property: any override, however wrong, either trains or is refused with one line naming
its key, before any run exists. Drawn by hypothesis over the keys nnlab checks and values of
every wrong kind (types, ranges, names, malformed lists)."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf

from nnlab.config_check import RULES, ConfigError, check_config
from nnlab.pipeline import run_training
from nnlab.train import check_overrides
from tests.conftest import compose_config

KEYS = sorted({*RULES, "data.n_samples", "data.n_classes", "optimizer.momentum"} - {"resume"})
NAMES = [
    "relu",
    "tanh",
    "moons",
    "iris",
    "sgd",
    "torch",
    "numpy",
    "he",
    "mse",
    "bce",
    "auto",
    "val/loss",
    "val/acc",
    "banana",
    "cpu",
]

scalars = st.one_of(
    st.integers(-(10**6), 10**6),
    st.sampled_from([0, 1, 2, 3, 32, 64, -1]),
    st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.sampled_from([0.0, 0.5, 0.99, 1.0, 1.5, -0.5, 1e-9, 1e9]),
    st.sampled_from(NAMES),
    st.booleans(),
    st.none(),
)
values = st.one_of(
    scalars, st.lists(st.one_of(st.integers(-3, 40), st.sampled_from(NAMES)), max_size=4)
)


def hydra_text(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value != value:
        return "nan"
    if isinstance(value, float) and value in (float("inf"), float("-inf")):
        return "inf" if value > 0 else "-inf"
    if isinstance(value, list):
        return "[" + ",".join(hydra_text(v) for v in value) + "]"
    return str(value)


def runs(uri):
    client = MlflowClient(uri)
    return [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]


# derandomize: the same examples on every run, so CI is reproducible; raise max_examples (or
# drop derandomize) locally to search wider.
@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    key=st.sampled_from(KEYS),
    value=values,
    data=st.sampled_from(["moons", "iris", "blobs", "sine"]),
)
def test_any_override_runs_or_gets_one_line_naming_its_key(store, key, value, data):
    override = f"{key}={hydra_text(value)}"
    base = [f"data={data}", *(["data.n_samples=null"] if data == "iris" else [])]
    before = len(runs(store))
    # The CLI's order: Hydra parses and composes (a key this dataset lacks, a value Hydra
    # cannot read), then nnlab checks the values.
    problem = check_overrides([*base, override])
    try:
        if problem is not None:
            raise ConfigError(problem)
        cfg = compose_config(*base, override)
        check_config(cfg)
    except ConfigError as err:
        message = str(err)
        assert "\n" not in message
        # It names the drawn key, or (when the value makes another setting invalid, e.g.
        # data.name=moons on top of iris's n_samples=null) the key that became wrong; the
        # configuration without the override is valid, so the override caused it.
        named = message.split("=", 1)[0]
        assert key in message or named in KEYS, (override, message)
        check_config(compose_config(*base))
        assert len(runs(store)) == before  # refused before anything was created
        return
    # Accepted: it must train. Keep it tiny (the accepted value itself stays in the config
    # unless it only sets how long or how big the run is).
    small = OmegaConf.merge(
        cfg, {"trainer": {"max_epochs": 1}, "tracking": {"log_plots": False, "log_model": False}}
    )
    if data != "iris" and (small.data.n_samples or 0) > 400:
        small.data.n_samples = 400
    result = run_training(small)
    assert MlflowClient(store).get_run(result.run_id).info.status == "FINISHED"
    assert not [r for r in runs(store) if r.info.status == "RUNNING"]


@pytest.mark.parametrize(
    "override", ["model.hidden=[1,2", "optimizer.lr=", "data=mnist", "model.nonexistent=3"]
)
def test_malformed_or_unknown_overrides_get_one_line(store, override):
    from tests.conftest import run_cli

    proc = run_cli("nnlab-train", override, "trainer.max_epochs=1")
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert override.split("=")[0] in lines[0]
    assert runs(store) == []
