"""The backend registry (nnlab.backends): what each backend declares, that it implements it,
and that every function it declares computes what NumPy's hand-written one does."""

import subprocess
import sys

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient

from nnlab import backends
from nnlab.nn.nets import EngineMLP
from nnlab.nn.scratch import ACTIVATIONS, LOSSES, MLP
from nnlab.paths import CONF_DIR
from tests.commands import spawn_cli
from tests.conftest import backend_params, compose_config

NAMES = backends.names()


def test_every_backend_config_has_its_module_and_declares_everything():
    assert {p.stem for p in (CONF_DIR / "backend").glob("*.yaml")} == set(NAMES)
    assert {"numpy", "torch", "torch_scratch", "jax", "tensorflow"} <= set(NAMES)
    for backend in backends.registry().values():
        # Every backend here implements every activation and loss nnlab knows; a new one
        # may implement fewer, and the config check then refuses the rest by name.
        assert set(backend.activations) == set(ACTIVATIONS), backend.name
        assert set(backend.losses) == set(LOSSES), backend.name
        assert backend.precisions == (32, 64) and "cpu" in backend.accelerators
        assert backend.summary and backend.missing_extra() is None  # make test installs all


@pytest.mark.slow  # a fresh interpreter: what importing nnlab alone loads
def test_reading_the_registry_imports_no_framework():
    code = (
        "import sys; from nnlab import backends; backends.registry(); "
        "print(sorted(m for m in ('torch', 'jax', 'tensorflow') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _problem(loss: str, rng):
    x = rng.normal(size=(13, 3))
    if loss == "cross_entropy":
        return [3, 5, 4, 3], x, rng.integers(0, 3, size=13)
    if loss == "bce":
        return [3, 5, 4, 1], x, rng.integers(0, 2, size=(13, 1)).astype(float)
    return [3, 5, 4, 1], x, 3 * rng.normal(size=(13, 1))


def _loss_and_grads(net, x, y, loss: str):
    """One batch's loss and gradients, computed the way the backend's module computes them,
    as NumPy's (d_weights as (fan_in, fan_out), d_biases)."""
    tx, ty = torch.tensor(x), torch.tensor(y)
    if isinstance(net, EngineMLP):
        value = net.compute_gradients(tx, ty, loss, l1=0.0)
    else:
        out = backends.get("torch").module().LOSSES[loss](net(tx), ty)
        out.backward()
        value = float(out.detach())
    linears = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    if linears:  # nn.Linear stores W as (fan_out, fan_in)
        return value, [m.weight.grad.T for m in linears], [m.bias.grad for m in linears]
    return value, [w.grad for w in net.weights], [b.grad for b in net.biases]


@pytest.mark.parametrize("name", backend_params(NAMES))
@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_each_function_agrees_with_numpy(name, activation, loss):
    """Forward, loss and gradients of a 3-5-4-k network, every activation x loss, float64."""
    rng = np.random.default_rng(len(activation) * 31 + len(loss))
    sizes, x, y = _problem(loss, rng)
    reference = MLP(sizes, activation, "default", seed=7)
    want_value, want_dw, want_db = reference.loss_and_grads(x, y, loss)

    net = backends.get(name).module().network(sizes, activation, "default", 7, torch.float64)
    np.testing.assert_allclose(
        net(torch.tensor(x)).detach().numpy(), reference.forward(x), rtol=1e-12, atol=1e-14
    )
    value, d_w, d_b = _loss_and_grads(net, x, y, loss)
    assert value == pytest.approx(want_value, rel=1e-12)
    for got, want in zip([*d_w, *d_b], [*want_dw, *want_db], strict=True):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-10, atol=1e-13)


@pytest.mark.slow
def test_a_missing_extra_gets_one_line_and_no_run(store, tmp_path):
    """nnlab-train backend=jax where jax cannot be imported: a sitecustomize on PYTHONPATH
    blocks it in the child process, as if the extra were not installed."""
    (tmp_path / "sitecustomize.py").write_text("import sys\nsys.modules['jax'] = None\n")
    proc = spawn_cli("nnlab-train", "backend=jax", env={"PYTHONPATH": str(tmp_path)})
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("nnlab-train: bad config: backend=jax: the jax backend needs jax")
    assert "install the 'jax' extra" in lines[0] and "-e '.[jax]'" in lines[0]
    assert (
        MlflowClient(store).search_runs(
            [e.experiment_id for e in MlflowClient(store).search_experiments()]
        )
        == []
    )


def test_the_backends_sweep_covers_every_backend_and_names_jobs_by_backend():
    from hydra import compose, initialize_config_dir

    from nnlab.tracking.describe import run_name

    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", ["sweep=backends"], return_hydra_config=True)
    assert cfg.hydra.sweeper.params.backend == "glob(*)"  # every file in conf/backend/
    assert cfg.trainer.precision == 64 and cfg.optimizer._target_ == "torch.optim.SGD"
    jax_cfg = compose_config("backend=jax")
    assert run_name(jax_cfg, [2, 10, 5, 1], ["backend"]) == "jax · moons 2-10-5-1"
