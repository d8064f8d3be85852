"""Members of different widths in one population: each layer padded to the widest member's.

A padded unit has zero incoming weights and a zero bias, so its pre-activation is 0, and
zero outgoing weights, so whatever its activation makes of 0 (0.5 for sigmoid) reaches the
next layer times zero: the member's real units compute exactly what they compute alone.
Backpropagation would still give a padded outgoing weight a gradient (act(0) x the error
above it), so every step masks the gradients of padded entries to zero; with a zero
gradient every elementwise optimizer nnlab offers leaves a zero weight zero (momentum and
Adam's moments stay 0, weight decay of 0 is 0, L1's sign(0) is 0). What can differ from the
member alone is the order in which the matmul adds the same real terms (exact zeros added
change nothing): float64 members equal their plain runs to 1e-9 (tested).
"""

from __future__ import annotations

import numpy as np


def padded_sizes(member_sizes: list[list[int]]) -> list[int]:
    """The widest member's width at each layer; the members must share their depth."""
    depths = {len(s) for s in member_sizes}
    if len(depths) != 1:
        raise ValueError(f"members of different depths cannot share a population: {depths}")
    return [max(column) for column in zip(*member_sizes, strict=True)]


def pad_params(params, sizes: list[int]):
    """[(W (fan_in, fan_out), b)] of one member, zero-padded to `sizes`."""
    padded = []
    for (w, b), fan_in, fan_out in zip(params, sizes[:-1], sizes[1:], strict=True):
        w_pad = np.zeros((fan_in, fan_out), dtype=w.dtype)
        w_pad[: w.shape[0], : w.shape[1]] = w
        b_pad = np.zeros(fan_out, dtype=b.dtype)
        b_pad[: b.shape[0]] = b
        padded.append((w_pad, b_pad))
    return padded


def crop_params(params, sizes: list[int]):
    """A member's own [(W, b)] out of its padded ones."""
    return [
        (w[:fan_in, :fan_out].copy(), b[:fan_out].copy())
        for (w, b), fan_in, fan_out in zip(params, sizes[:-1], sizes[1:], strict=True)
    ]


def gradient_masks(member_sizes: list[list[int]], sizes: list[int]):
    """For each stacked weight and bias (members, ...): 1 where a member has the entry, 0 where
    it is padding. Weights first, then biases, as the stacked networks list their parameters."""
    weights, biases = [], []
    for layer, (fan_in, fan_out) in enumerate(zip(sizes, sizes[1:], strict=False)):
        w_mask = np.zeros((len(member_sizes), fan_in, fan_out))
        b_mask = np.zeros((len(member_sizes), fan_out))
        for k, own in enumerate(member_sizes):
            w_mask[k, : own[layer], : own[layer + 1]] = 1.0
            b_mask[k, : own[layer + 1]] = 1.0
        weights.append(w_mask)
        biases.append(b_mask)
    return [*weights, *biases]
