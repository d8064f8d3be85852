"""`tracking.watch` (nnlab.training.layer_watch): per-layer gradient norms, weight norms,
update ratios and dead or saturated shares, computed by hand on a tiny network, the same on
every backend, and a population member's equal to its plain run's."""

import numpy as np
import pytest
import torch

from nnlab import backends
from nnlab.config.seeds import effective_seeds, member_config
from nnlab.nn.population_nets import PopulationMLP
from nnlab.nn.scratch import init_params
from nnlab.nn.torch_functions import LOSSES
from nnlab.training.layer_watch import LayerWatch
from nnlab.training.setup import run_setup
from tests.conftest import backend_params, compose_config
from tests.training.test_population import fit

TINY = [
    "model.hidden=[5,3]",
    "data.n_samples=60",
    "data.batch_size=null",  # one step an epoch: the watched step is the epoch's only one
    "optimizer=sgd",
    "optimizer.lr=0.5",
    "trainer.precision=64",
    "trainer.optimizer_kernel=foreach",
    "tracking.watch=true",
    "tracking.watch_every=1",
    "tracking.log_plots=false",
    "tracking.log_model=false",
    "trainer.progress=none",
]


def watched(history: dict, epoch: int = 0) -> dict[str, float]:
    return {k: dict(points)[epoch] for k, points in history.items() if k.startswith("layers/")}


def assert_same_watch(got_history: dict, want_history: dict, epochs: int, label: str) -> None:
    """Every watched epoch holds the same layer metrics, each equal to 1e-9."""
    for epoch in range(epochs):
        want, got = watched(want_history, epoch), watched(got_history, epoch)
        assert set(got) == set(want)
        for key, value in want.items():
            assert got[key] == pytest.approx(value, rel=1e-9, abs=1e-12), (label, key)


def test_the_quantities_are_what_they_say_on_a_tiny_network():
    """Epoch 0 of full-batch SGD, by hand: the step is -lr * gradient of the mean loss at the
    initial weights; the hidden activations are recomputed after it on the validation split."""
    cfg = compose_config(*TINY, "trainer.max_epochs=1", shrink=False)
    _, (history,) = fit(cfg, [cfg])
    got = watched(history)

    setup = run_setup(cfg)
    splits = setup.splits
    params = init_params(setup.sizes, cfg.model.init, effective_seeds(cfg).init)
    ws = [torch.tensor(w, requires_grad=True) for w, _ in params]
    bs = [torch.tensor(b, requires_grad=True) for _, b in params]

    def forward(x, ws, bs, keep=None):
        h = torch.as_tensor(x)
        for i, (w, b) in enumerate(zip(ws, bs, strict=True)):
            h = h @ w + b
            if keep is not None and i < len(ws) - 1:
                keep.append(h)
            if i < len(ws) - 1:
                h = torch.relu(h)
        return h

    y = torch.as_tensor(splits.y_train, dtype=torch.float64).reshape(-1, 1)
    LOSSES[setup.loss_name](forward(splits.x_train, ws, bs), y).backward()
    lr = 0.5
    for i, w in enumerate(ws, start=1):
        step = lr * w.grad
        assert got[f"layers/{i}/grad_norm"] == pytest.approx(float(w.grad.norm()), rel=1e-9)
        assert got[f"layers/{i}/weight_norm"] == pytest.approx(float((w - step).norm()), rel=1e-9)
        ratio = float(step.norm() / w.norm())
        assert got[f"layers/{i}/update_ratio"] == pytest.approx(ratio, rel=1e-9)
    after_w = [(w - lr * w.grad).detach() for w in ws]
    after_b = [(b - lr * b.grad).detach() for b in bs]
    pre = []
    forward(splits.x_val, after_w, after_b, keep=pre)
    for i, p in enumerate(pre, start=1):
        dead = float((p <= 0).all(dim=0).double().mean())
        assert got[f"layers/{i}/dead_fraction"] == pytest.approx(dead, abs=1e-12)
    assert "layers/3/dead_fraction" not in got  # the output layer has no units to die
    # Watched every epoch here; the default watches every 10th.
    assert [e for e, _ in history["layers/1/grad_norm"]] == [0]


def test_all_negative_pre_activations_report_every_relu_unit_dead():
    params = init_params([2, 4, 3, 1], "default", 0)
    params[0] = (params[0][0], np.full(4, -100.0))  # no input lifts a first-layer unit above 0
    net = PopulationMLP([params], "relu", torch.float64)
    x = torch.randn(1, 50, 2, dtype=torch.float64)
    (first, second) = LayerWatch(1, "relu").hidden_shares(net, x)
    assert first[0] == "dead_fraction" and float(first[1][0]) == 1.0  # every unit, every row
    # The next layer sees only zeros: its units are its biases alone, dead where those are <= 0.
    assert second[0] == "dead_fraction"
    assert float(second[1][0]) == float((torch.tensor(params[1][1]) <= 0).double().mean())


def test_saturated_tanh_and_sigmoid_units_are_counted():
    params = init_params([2, 4, 1], "default", 0)
    big = [(w * 1000.0, b) for w, b in params]  # pre-activations far from 0: saturated
    x = torch.randn(1, 40, 2, dtype=torch.float64)
    for activation in ("tanh", "sigmoid"):
        net = PopulationMLP([big], activation, torch.float64)
        ((name, share),) = LayerWatch(1, activation).hidden_shares(net, x)
        assert name == "saturated_fraction" and float(share[0]) > 0.95
        calm = PopulationMLP([[(w * 1e-3, b * 0) for w, b in params]], activation, torch.float64)
        ((_, share),) = LayerWatch(1, activation).hidden_shares(calm, x)
        assert float(share[0]) == 0.0  # near 0: not saturated
    assert LayerWatch(1, "gelu").hidden_shares(net, x) == []


@pytest.mark.parametrize("backend", backend_params(backends.names()))
def test_every_backend_reports_the_same_values(backend):
    reference = compose_config(*TINY, "trainer.max_epochs=3", shrink=False)
    _, (expected,) = fit(reference, [reference])
    cfg = compose_config(*TINY, "trainer.max_epochs=3", f"backend={backend}", shrink=False)
    _, (history,) = fit(cfg, [cfg])
    assert_same_watch(history, expected, 3, backend)


def test_population_members_get_their_own_values_equal_to_their_plain_runs():
    cfg = compose_config(*TINY, "trainer.max_epochs=3", "repeats=3", shrink=False)
    members = [member_config(cfg, k) for k in range(3)]
    _, histories = fit(cfg, members)
    firsts = set()
    for member, history in zip(members, histories, strict=True):
        _, (plain,) = fit(member, [member])
        for epoch in range(3):
            for key, value in watched(plain, epoch).items():
                assert watched(history, epoch)[key] == pytest.approx(value, rel=1e-9, abs=1e-12)
        firsts.add(watched(history)["layers/1/grad_norm"])
    assert len(firsts) == 3  # three seeds, three networks, three values


def test_the_layers_figure_draws_a_line_per_layer_and_a_share_panel(store):
    """plots/layers.png is logged with the run; its panels hold one labelled line per layer,
    log axes for the norms, and the dead share on 0..1."""
    from mlflow.tracking import MlflowClient

    from nnlab.plots.layer_figures import layers_figure
    from nnlab.training.run import run_training

    cfg = compose_config(*TINY, "trainer.max_epochs=4", "tracking.log_plots=true", shrink=False)
    result = run_training(cfg)
    files = {a.path for a in MlflowClient(store).list_artifacts(result.run_id, "plots")}
    assert "plots/layers.png" in files
    client = MlflowClient(store)
    history = {
        k: [(m.step, m.value) for m in client.get_metric_history(result.run_id, k)]
        for k in result.metrics
        if k.startswith("layers/")
    }
    fig = layers_figure(history, "t")
    grad, weight, ratio, share = fig.axes[:4]
    for ax in (grad, weight, ratio):
        assert [t.get_text() for t in ax.get_legend().get_texts()] == [
            "layer 1",
            "layer 2",
            "layer 3",
        ]
        assert ax.get_yscale() == "log" and len(ax.lines[0].get_xdata()) == 4
    assert share.get_title() == "dead units (never active)" and share.get_ylim()[1] <= 1.05
    assert [t.get_text() for t in share.get_legend().get_texts()] == ["layer 1", "layer 2"]


def test_a_sweeps_gradient_flow_figure_draws_each_configuration_per_layer(store):
    """plots/gradient_flow.png: each job's gradient norm per layer at its first and last
    watched epoch, read from the runs (a store the test writes)."""
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    from nnlab.report.dashboard import gradient_flow
    from nnlab.report.tables import to_row
    from nnlab.tracking.store.names import OVERRIDES_TAG

    client = MlflowClient(store)
    experiment = client.create_experiment("flow")
    # sigmoid's norm shrinks 10x per layer inwards; it has two seeds, one with norms 4x the
    # other's: its line is their geometric mean, 2x.
    runs = [("sigmoid", 0.1, 1.0), ("sigmoid", 0.1, 4.0), ("relu", 1.0, 1.0)]
    for activation, factor, scale in runs:
        run = client.create_run(experiment, tags={OVERRIDES_TAG: f"model.activation={activation}"})
        metrics = [
            Metric(
                f"layers/{i}/grad_norm", scale * factor ** (3 - i) * (2 if epoch else 1), 0, epoch
            )
            for i in (1, 2, 3)
            for epoch in (0, 10)
        ]
        client.log_batch(run.info.run_id, metrics=metrics)
        client.set_terminated(run.info.run_id)
    rows = [to_row(r) for r in client.search_runs([experiment])]
    fig = gradient_flow(client, rows, ["model.activation"], "t")
    ax = fig.axes[0]
    assert ax.get_yscale() == "log" and ax.get_xlabel().startswith("layer")
    labels = sorted(t.get_text() for t in ax.get_legend().get_texts())
    assert labels == ["relu", "sigmoid (2 seeds)"]
    assert ax.get_title() == "t: gradient flow, geometric mean over seeds"
    assert "epoch 0" in ax.get_legend().get_title().get_text()
    lines = {(ln.get_label(), ln.get_linestyle()): list(ln.get_ydata()) for ln in ax.lines}
    # epoch 10, layers 1-3: 2x the first seed's 0.02, 0.2, 2.0
    assert lines[("sigmoid (2 seeds)", "-")] == pytest.approx([0.04, 0.4, 4.0])
    assert lines[("relu", "-")] == pytest.approx([2.0, 2.0, 2.0])
    assert gradient_flow(client, [], ["model.activation"], "t") is None  # nothing watched


def test_members_of_different_widths_count_only_their_own_units():
    """Padded units (nnlab.nn.padding: zero weights, 0 before the activation) are not dead
    units: a narrow member in a wide population reports its plain run's shares."""
    for activation in ("relu", "sigmoid"):
        widths = ["model.hidden=[5,3]", "model.hidden=[2,3]", "model.hidden=[4,1]"]
        members = [
            compose_config(*TINY, "trainer.max_epochs=2", f"model.activation={activation}", w)
            for w in widths
        ]
        _, histories = fit(members[0], members)
        for member, history in zip(members, histories, strict=True):
            _, (plain,) = fit(member, [member])
            assert_same_watch(history, plain, 2, activation)
