"""The target column of a user's CSV: what its labels mean, and which task they make.

Labels are compared by what they mean: "1" and "01" are one class, 1.0 and 1.00 too. Integer
or text labels are classes (two: binary, more: multiclass), floats a regression target,
unless `data.task` says otherwise. A label too rare to be in every split is named as the
typo or stray value it most likely is (nnlab.data.csv_table reads the file).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nnlab.console import warn
from nnlab.data.csv_format import CsvFormat
from nnlab.data.datasets import BINARY, MULTICLASS, REGRESSION, DataError

MISSING = {"", "na", "n/a", "nan", "null", "none"}  # cells read as missing (case-insensitive)
NA_CELLS = sorted({v for m in MISSING for v in (m, m.upper(), m.title())})
# A float target with at most this many distinct values, each seen at least twice on average,
# looks like labels: the guess (regression) is kept but the user is told how to choose.
FEW_DISTINCT_FLOATS = 10
# An integer target with more distinct values than this looks like a quantity.
MANY_INTEGER_LABELS = 20
# A label seen in fewer rows than this cannot be in the train, validation and test splits
# alike: in a table of STRAY_CHECK_ROWS rows or more it is a typo or a stray value, named in
# the message (a tiny table's split check names its classes instead).
MIN_LABEL_ROWS = 3
STRAY_CHECK_ROWS = 30


@dataclass
class TargetColumn:
    """The target as written: numbers (float64, NaN where missing) when every cell is one,
    else text (stripped); `integers` when every number is written as an integer."""

    numbers: np.ndarray | None
    text: object  # a pandas Series of str, or None for numbers
    integers: bool
    missing: np.ndarray

    def kept(self, keep: np.ndarray) -> TargetColumn:
        numbers = None if self.numbers is None else self.numbers[keep]
        text = None if self.text is None else self.text[keep].reset_index(drop=True)
        return TargetColumn(numbers, text, self.integers, self.missing[keep])


def read_target(column, file: Path, fmt: CsvFormat, target: str) -> TargetColumn:
    """`column` as pandas parsed it. Integer text parses as int64; with a missing cell it
    parses as float64, so integral floats are told apart by reading the column's text."""
    from pandas.api.types import is_numeric_dtype  # pandas for data=csv only (csv_table)

    if is_numeric_dtype(column):
        numbers = column.to_numpy(dtype=np.float64)
        missing = np.isnan(numbers)
        integers = column.dtype.kind in "iu"
        present = numbers[~missing]
        if not integers and np.array_equal(present, np.round(present)):
            text = _column_text(file, fmt, target)
            integers = bool(text[~missing].str.fullmatch(r"[+-]?\d+").all())
        return TargetColumn(numbers, None, integers, missing)
    text = column.astype(object).str.strip()
    missing = (text.isna() | text.str.lower().isin(MISSING)).to_numpy()
    return TargetColumn(None, text.mask(missing), False, missing)


def _column_text(file: Path, fmt: CsvFormat, name: str):
    # lazy: pandas (~0.5 s) loads only for a CSV dataset
    import pandas as pd

    column = pd.read_csv(
        file, sep=fmt.delimiter, encoding=fmt.encoding, usecols=[name], dtype=str,
        na_values=NA_CELLS, keep_default_na=False, skipinitialspace=True,
    )[name]  # fmt: skip
    return column.str.strip()


def resolve_target(
    labels: TargetColumn, target: str, task: str
) -> tuple[np.ndarray, str, tuple[str, ...]]:
    """The target as class indices or reals, the task, and the class labels (no missing
    cells left)."""
    # lazy: pandas (~0.5 s) loads only for a CSV dataset
    import pandas as pd

    numbers, integers = labels.numbers, labels.integers
    # Labels are compared as what they mean: "1" and "01" are one class, 1.0 and 1.00 too.
    if integers:
        keys = numbers.astype(np.int64)
    elif numbers is not None:
        keys = numbers
    else:
        keys = labels.text
    codes, distinct = pd.factorize(keys, sort=True)
    distinct = list(distinct)
    shown = [f"{k:g}" if isinstance(k, float) else str(k) for k in distinct]
    cells = codes
    if len(distinct) < 2:
        raise DataError(
            f"data.target={target}: the column holds a single value ({shown[0]}) "
            "in every row used: nothing to learn"
        )
    if task == "auto":
        if numbers is None or integers:
            task = BINARY if len(distinct) == 2 else MULTICLASS
            if integers and len(distinct) > MANY_INTEGER_LABELS:
                warn(
                    f"data.target={target}: {len(distinct)} distinct integer values are "
                    f"treated as {len(distinct)} classes; set data.task=regression if it is "
                    "a quantity"
                )
        else:
            task = REGRESSION
            if len(distinct) <= FEW_DISTINCT_FLOATS and len(cells) >= 2 * len(distinct):
                warn(
                    f"data.target={target}: its {len(distinct)} distinct values "
                    f"({', '.join(shown)}) look like labels but are treated as a regression "
                    "target; set data.task=binary or data.task=multiclass to treat them as "
                    "classes, or data.task=regression to keep this and silence it"
                )
    if task == REGRESSION:
        if numbers is None:
            example = next(c for c in labels.text if _is_text(c))
            raise DataError(
                f"data.task=regression: the target column {target} is not numeric "
                f"(e.g. {example!r}); allowed for text labels: binary, multiclass"
            )
        return numbers, REGRESSION, ()
    if task == BINARY and len(distinct) != 2:
        raise DataError(
            f"data.task=binary: the target column {target} has {len(distinct)} distinct "
            "values, a binary task needs exactly 2: use data.task=multiclass"
        )
    _check_labels(target, shown, np.bincount(codes, minlength=len(distinct)), numbers is None)
    return codes.astype(np.int64), task, tuple(shown)


def _check_labels(target: str, shown: list[str], counts: np.ndarray, text: bool) -> None:
    """Labels the user wrote: one too rare to be in every split (a typo, a stray value) is
    refused with its row count; numbers among text labels are warned about."""
    rare = [(label, int(n)) for label, n in zip(shown, counts, strict=True) if n < MIN_LABEL_ROWS]
    others = ", ".join(
        f"{label} ({int(n)})" for label, n in zip(shown, counts, strict=True) if n >= MIN_LABEL_ROWS
    )
    if rare and counts.sum() >= STRAY_CHECK_ROWS:
        named = ", ".join(f"{label!r} ({n} row{'s' if n > 1 else ''})" for label, n in rare)
        raise DataError(
            f"data.target={target}: label(s) {named} appear in fewer than {MIN_LABEL_ROWS} "
            f"rows, too few to train, validate and test on: a typo or a stray value? The "
            f"other labels: {others}. Fix the file, or remove those rows"
        )
    if text:
        numeric = [label for label in shown if not _is_text(label)]
        if numeric and len(numeric) < len(shown):
            warn(
                f"data.target={target}: numbers among text labels ({', '.join(numeric)}): "
                "each is a class of its own; fix the file if they are stray values"
            )


def _is_text(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return True
    return False
