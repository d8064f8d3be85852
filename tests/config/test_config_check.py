import pytest

from nnlab.config.check import check_config
from nnlab.config.rules import ConfigError
from nnlab.data.datasets import DATASETS
from nnlab.paths import CONF_DIR
from tests.conftest import compose_config

DATASET_OPTIONS = sorted(
    p.stem for p in (CONF_DIR / "data").glob("*.yaml") if not p.stem.startswith("_")
)


@pytest.mark.parametrize("data", sorted(DATASETS))  # data=csv needs a file: test_csv_data.py
@pytest.mark.parametrize(
    "optimizer", sorted(p.stem for p in (CONF_DIR / "optimizer").glob("*.yaml"))
)
def test_every_shipped_choice_passes(data, optimizer):
    check_config(compose_config(f"data={data}", f"optimizer={optimizer}", shrink=False))


@pytest.mark.parametrize(
    "override, key",
    [
        ("data.name=mnist", "data.name"),
        ("model.activation=swish", "model.activation"),
        ("model.init=orthogonal", "model.init"),
        ("model.loss=hinge", "model.loss"),
        ("data=sine model.loss=bce", "model.loss"),
        ("data=moons model.loss=mse", "model.loss"),
        ("optimizer._target_=torch.optim.LBFGS", "optimizer._target_"),
        ("optimizer.lr=0", "optimizer.lr"),
        ("repeats=0", "repeats"),
        ("repeats=2.5", "repeats"),
        ("resume=abc123 repeats=2", "repeats"),  # resume continues one run
        ("seed=4294967295 repeats=2", "repeats"),  # the second member's seed is out of range
        ("seeds.data=-1", "seeds.data"),
        ("seeds.init=1.5", "seeds.init"),
        ("seeds.order=abc", "seeds.order"),
        ("optimizer.lr=-0.1", "optimizer.lr"),
        ("optimizer.lr=abc", "optimizer.lr"),
        ("optimizer.weight_decay=-1", "optimizer.weight_decay"),
        ("optimizer=sgd optimizer.momentum=1.5", "optimizer.momentum"),
        ("model.l1=-0.1", "model.l1"),
        ("trainer.max_epochs=0", "trainer.max_epochs"),
        ("trainer.max_epochs=2.5", "trainer.max_epochs"),
        ("trainer.precision=16", "trainer.precision"),
        ("data.n_samples=0", "data.n_samples"),
        ("data.n_samples=-5", "data.n_samples"),
        ("data.n_samples=3", "data.n_samples"),
        ("data=iris data.n_samples=500", "data.n_samples"),
        ("data.batch_size=0", "data.batch_size"),
        ("data.val_fraction=0", "data.val_fraction"),
        ("data.test_fraction=1.5", "data.test_fraction"),
        ("data.val_fraction=0.6 data.test_fraction=0.5", "data.val_fraction"),
        ("data.noise=-0.1", "data.noise"),
        ("data=blobs data.n_classes=1", "data.n_classes"),
        ("model.hidden=[10,0]", "model.hidden"),
        ("model.hidden=[-3]", "model.hidden"),
        ("model.hidden=[a]", "model.hidden"),
        ("model.hidden=5", "model.hidden"),
        ("seed=-1", "seed"),
        ("data=sine objective=val/acc", "objective"),
        ("objective=val/banana", "objective"),
        ("backend.name=mxnet", "backend.name"),
        # Integers beyond what NumPy and int64 take, and floats where integers belong.
        ("seed=99999999999999999999", "seed"),
        ("seed=4294967296", "seed"),
        ("data.n_samples=99999999999999999999", "data.n_samples"),
        ("trainer.max_epochs=9223372036854775808", "trainer.max_epochs"),
        ("data.batch_size=2.0", "data.batch_size"),
        ("trainer.precision=32.0", "trainer.precision"),
        ("data=blobs data.n_classes=3.0", "data.n_classes"),
        ("model.hidden=[10.0]", "model.hidden"),
        ("model.hidden=[9223372036854775808]", "model.hidden"),
        # Configs that cannot fit in memory, named by the key that makes them big.
        ("model.hidden=[200000,200000]", "model.hidden"),
        ("data=sine data.batch_size=32 data.n_samples=100000000000", "data.n_samples"),
        # Splits too small to measure their task.
        ("data.n_samples=5", "data.n_samples"),
        ("data=blobs data.n_samples=20", "data.n_samples"),
        ("data=sine data.n_samples=4", "data.n_samples"),
        ("data=iris data.n_samples=12", "data.n_samples"),
        # Bad tracking values are config errors, not store failures.
        ("tracking.experiment=''", "tracking.experiment"),
        ("tracking.experiment=[a,b]", "tracking.experiment"),
        ("tracking.run_name=''", "tracking.run_name"),
        ("tracking.log_model=maybe", "tracking.log_model"),
        ("tracking.uri=banana", "tracking.uri"),
    ],
)
def test_bad_value_is_named_in_one_line(override, key):
    cfg = compose_config(*override.split())
    with pytest.raises(ConfigError) as caught:
        check_config(cfg)
    message = str(caught.value)
    assert message.startswith(f"{key}="), message
    assert "\n" not in message
    bad_value = override.split()[-1].split("=", 1)[1]
    assert bad_value.strip("[]").split(",")[-1] in message  # the value is shown


def test_linear_model_and_full_batch_are_allowed():
    check_config(compose_config("model.hidden=[]", "data.batch_size=null"))


def test_every_dataset_has_a_config_and_every_config_a_dataset():
    assert set(DATASET_OPTIONS) == {*DATASETS, "csv"}


def test_smallest_allowed_split_is_the_one_suggested():
    # The refusal for a too-small dataset suggests a size; that size must then be accepted.
    with pytest.raises(ConfigError) as caught:
        check_config(compose_config("data=blobs", "data.n_samples=20"))
    suggested = int(str(caught.value).rsplit(">= ", 1)[1])
    check_config(compose_config("data=blobs", f"data.n_samples={suggested}"))
    with pytest.raises(ConfigError):
        check_config(compose_config("data=blobs", f"data.n_samples={suggested - 1}"))
