"""A CSV's feature columns as the network's inputs: numbers as they are, text one-hot encoded.

`data.categorical=auto` encodes a text column with few distinct values (at most
MAX_CATEGORIES, each seen at least twice on average): one input per category, named
`<column>=<category>`, in sorted order. A missing cell is a category of its own, `(missing)`,
unless `data.dropna=true` drops its row. `data.categorical=false` refuses text columns.

A column that is mostly numbers with a few text cells is a typo, not a category: it is
refused with the text cells named.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nnlab.data.datasets import DataError

MAX_CATEGORIES = 20
MISSING_CATEGORY = "(missing)"
CATEGORICAL_CHOICES = ("auto", "false")


@dataclass
class EncodedFeatures:
    x: np.ndarray  # float64, rows x inputs (NaN where a number is missing)
    names: list[str]  # one per input
    categories: dict[str, tuple[str, ...]]  # text column -> its categories, in input order
    missing: np.ndarray  # rows with a missing category that dropna drops


def encode_features(frame, columns, shown_path, categorical: str, dropna: bool) -> EncodedFeatures:
    """`frame`: the feature columns as pandas parsed them (numbers, or text as object)."""
    from pandas.api.types import is_numeric_dtype  # pandas for data=csv only (csv_table)

    rows = len(frame)
    blocks, names, categories = [], [], {}
    missing = np.zeros(rows, bool)
    refused = []
    for name in columns:
        column = frame[name]
        if is_numeric_dtype(column):
            blocks.append(column)
            names.append(name)
            continue
        text = column.astype(object).str.strip()
        typo = _text_in_numbers(text)
        if typo is not None:
            raise DataError(
                f"data.path={shown_path}: column {name} is numbers but for {typo}: fix those "
                "cells (a missing value is an empty cell)"
            )
        distinct = sorted(text.dropna().unique())
        example = distinct[0] if distinct else ""
        if categorical == "false":
            refused.append(f"{name} (e.g. {example!r})")
            continue
        if len(distinct) > MAX_CATEGORIES or len(distinct) * 2 > rows:
            refused.append(
                f"{name} (e.g. {example!r}: {len(distinct)} distinct values in {rows} rows, "
                f"too many to one-hot encode: at most {MAX_CATEGORIES}, each seen twice)"
            )
            continue
        absent = text.isna().to_numpy()
        if absent.any():
            if dropna:
                missing |= absent
            else:
                distinct.append(MISSING_CATEGORY)
                text = text.fillna(MISSING_CATEGORY)
        values = text.to_numpy()
        blocks += [(values == c).astype(np.float64) for c in distinct]
        names += [f"{name}={c}" for c in distinct]
        categories[name] = tuple(distinct)
    if refused:
        how = (
            " (data.categorical=auto one-hot encodes text columns)"
            if categorical == "false"
            else " (choose columns with data.features=[...])"
        )
        raise DataError(
            f"data.path={shown_path}: feature columns must be numeric; not numeric: "
            f"{', '.join(refused)}{how}"
        )
    if all(name in frame.columns for name in names):  # every column numeric: one copy
        return EncodedFeatures(frame[names].to_numpy(np.float64), names, categories, missing)
    x = np.empty((rows, len(blocks)))  # filled column by column: no intermediate copies
    for j, block in enumerate(blocks):
        x[:, j] = block
    return EncodedFeatures(x, names, categories, missing)


def _text_in_numbers(text) -> str | None:
    """'x' (row 5), ... when most of a text column's cells are numbers; else None."""
    # lazy: pandas (~0.5 s) loads only for a CSV dataset
    import pandas as pd

    present = text.dropna()
    if present.empty:
        return None
    numbers = pd.to_numeric(present, errors="coerce")
    words = present[numbers.isna()]
    if len(words) * 2 >= len(present):
        return None  # mostly text: a categorical column
    counts = words.value_counts()
    shown = [f"{value!r} ({n} row{'s' if n > 1 else ''})" for value, n in counts.head(3).items()]
    first = int(words.index[0]) + 2  # the header is line 1
    more = f" and {len(counts) - 3} more" if len(counts) > 3 else ""
    return f"{', '.join(shown)}{more}, the first at line {first}"
