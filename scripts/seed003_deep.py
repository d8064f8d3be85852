"""Seed 003's activation exercise, deep: MLP 2-20-20-20-20-1 on moons, sigmoid against ReLU,
over seeds, watched inside (tracking.watch). Used by reproduce_seed003.py.

Why sigmoid nets of this depth train slowly: the gradient that reaches a layer has passed back
through every layer above it, and each multiplies it by its weights and by the activation's
derivative. sigmoid'(z) = s(1 - s) <= 1/4 everywhere; ReLU' is 1 where a unit is active. So at
the first step (full batch: epoch 0 is the initial weights), with Delta_5 the output error
(rows x 1), A_4 the last hidden layer's activations and X the inputs:

    |g_1|_F = |X^T Delta_1|_F <= |X|_2 |Delta_1|_F
    |Delta_(l-1)|_F = |(Delta_l W_l^T) * f'(Z_(l-1))|_F <= s |W_l|_2 |Delta_l|_F
    => |g_1| / |g_5| <= s^4 |W_2|_2 |W_3|_2 |W_4|_2 |W_5|_2 |X|_2 |Delta_5|_F / |A_4^T Delta_5|_F

with s = 1/4 for sigmoid and 1 for ReLU: the sigmoid net's bound carries a factor 1/256 that the
ReLU net's does not. The script computes each seed's bound from its initial weights and its
training data (nothing trained), checks the measured ratio (layers/1 over layers/5 grad_norm at
epoch 0) against it, and states each activation's ratio with its 95% interval over seeds
(on the log scale: the ratios spread over decades).
"""

from __future__ import annotations

import numpy as np

from nnlab.config.seeds import effective_seeds
from nnlab.nn.scratch import ACTIVATIONS, init_params
from nnlab.stats import summarize
from nnlab.tracking.store.client import get_client, tracking_uri
from nnlab.tracking.store.queries import metric_history
from nnlab.training.setup import run_setup

HIDDEN = "model.hidden=[20,20,20,20]"
LAYERS = 5  # four hidden layers and the output layer
MAX_SLOPE = {"sigmoid": 0.25, "relu": 1.0}  # the largest value of each activation's derivative


def ratio_bound(params, activation: str, x: np.ndarray, y: np.ndarray) -> float:
    """The bound above on |g_1| / |g_5| at the weights `params` [(W, b), ...] (W: in x out)."""
    act = ACTIVATIONS[activation].fn
    h = x
    for w, b in params[:-1]:
        h = act(h @ w + b)
    w_out, b_out = params[-1]
    probability = 1.0 / (1.0 + np.exp(-(h @ w_out + b_out)))
    delta = probability - y.reshape(-1, 1)  # BCE's output error; its 1/rows cancels
    last = np.linalg.norm(h.T @ delta)
    gains = np.prod([np.linalg.norm(w, 2) for w, _ in params[1:]])
    slopes = MAX_SLOPE[activation] ** (len(params) - 1)
    return float(slopes * gains * np.linalg.norm(x, 2) * np.linalg.norm(delta) / last)


def deep_variant(rep, moons: str, repeats: str) -> None:
    """The sweep, its expectations and notes (rep: nnlab.seed_scripts.harness.Reproduction)."""
    rows = rep.sweep(
        moons,
        HIDDEN,
        "model.activation=relu,sigmoid",
        "tracking.watch=true",
        "tracking.watch_every=100",
        repeats,
    )
    client = get_client(tracking_uri())
    measured: dict[str, list[float]] = {"relu": [], "sigmoid": []}
    within: dict[str, list[float]] = {"relu": [], "sigmoid": []}
    for row in rows:
        if row.status != "FINISHED":
            continue
        activation = row.overrides["model.activation"]
        first, last = (
            dict(metric_history(client, row.run_id, f"layers/{i}/grad_norm"))[0]
            for i in (1, LAYERS)
        )
        cfg = rep.config(
            moons, HIDDEN, f"model.activation={activation}", f"seed={row.params['seed']}"
        )
        setup = run_setup(cfg)
        params = init_params(setup.sizes, cfg.model.init, effective_seeds(cfg).init)
        bound = ratio_bound(params, activation, setup.splits.x_train, setup.splits.y_train)
        measured[activation].append(first / last)
        within[activation].append(first / last / bound)
    spans = {}
    for activation, ratios in measured.items():
        # The ratios spread over decades: their interval is taken on the log scale (the
        # geometric mean's), which a positive quantity's interval should be.
        s = summarize(np.log(ratios))
        if s is None:
            rep.note(f"deep {activation}: no seed finished")
            continue
        low, high = (np.exp(s.ci_low), np.exp(s.ci_high)) if s.ci_low is not None else (0, 0)
        spans[activation] = (low, high)
        rep.note(
            f"deep 2-20-20-20-20-1 {activation}: |grad layer 1| / |grad layer 5| at epoch 0, "
            f"geometric mean {np.exp(s.mean):.3g} [{low:.3g}, {high:.3g}] (95%, n={s.n})"
        )
        rep.expect(
            f"deep {activation}: measured ratio over its derivative bound, largest seed",
            max(within[activation]),
            "<=",
            1.0,
            f"{activation}' <= {MAX_SLOPE[activation]:g} bounds the gradient reaching layer 1",
            needs_training=False,
        )
    if len(spans) == 2 and spans["relu"][0] > 0:
        rep.expect(
            "deep: sigmoid's ratio, upper 95% end, over ReLU's lower 95% end",
            spans["sigmoid"][1] / spans["relu"][0],
            "<",
            1.0,
            "vanishing gradients: each sigmoid layer passes back at most 1/4 of the signal",
            # Not enforced with --quick: its 2 seeds give intervals too wide to part.
            needs_training=True,
        )
