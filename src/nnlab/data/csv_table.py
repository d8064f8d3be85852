"""The user's own table: `data=csv data.path=my.csv data.target=price`.

A CSV with a header row, numeric feature columns and one target column. The target decides
the task unless `data.task` says otherwise: integer or text labels are classes (two give a
binary task, more a multiclass one; labels are mapped to class indices in sorted order),
floats are a regression target. Everything after reading (splits, standardisation, batches,
backends, sweeps, figures) is what the built-in datasets use.

Every problem with the file is one line naming the key, the value and what is wrong, raised
as DataError before any run exists. Only the standard library and NumPy here: a config check
reads the file (the network's input and output sizes come from it) in well under a second.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nnlab.console import warn
from nnlab.data.datasets import BINARY, MULTICLASS, REGRESSION, DataError

TASK_CHOICES = ("auto", REGRESSION, BINARY, MULTICLASS)
MISSING = {"", "na", "n/a", "nan", "null", "none"}  # cells read as missing (case-insensitive)
# A float target with at most this many distinct values, each seen at least twice on average,
# looks like labels: the guess (regression) is kept but the user is told how to choose.
FEW_DISTINCT_FLOATS = 10
# An integer target with more distinct values than this looks like a quantity.
MANY_INTEGER_LABELS = 20


@dataclass(frozen=True)
class CsvTable:
    """A CSV file read into arrays, with what the run records about it."""

    path: Path  # absolute
    sha256: str
    target: str
    task: str
    features: tuple[str, ...]
    classes: tuple[str, ...]  # the label of each class index; () for regression
    x: np.ndarray  # float64, rows x features
    y: np.ndarray  # class indices (int64) or real values (float64)
    rows_in_file: int
    rows_dropped: int

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def record(self) -> dict:
        """What a run stores about its file (tags and the data/csv.json artifact)."""
        return {
            "path": str(self.path),
            "sha256": self.sha256,
            "rows": self.rows_in_file,
            "rows_used": len(self.y),
            "rows_dropped": self.rows_dropped,
            "columns": len(self.features) + 1,
            "features": list(self.features),
            "target": self.target,
            "task": self.task,
            "classes": {str(i): label for i, label in enumerate(self.classes)},
        }


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_csv_table(
    path: str | None,
    target: str | None,
    task: str = "auto",
    dropna: bool = False,
    features: list[str] | None = None,
) -> CsvTable:
    """Read and check the file; DataError (one line) for anything that cannot be trained on."""
    if not isinstance(path, str) or not path.strip():
        raise DataError(f"data.path={_show(path)}: the path of a CSV file is required")
    if not isinstance(target, str) or not target.strip():
        raise DataError(f"data.target={_show(target)}: the name of the target column is required")
    file = Path(path).expanduser().resolve()
    try:
        stat = file.stat()
    except OSError as err:
        raise DataError(f"data.path={path}: cannot read it ({err.strerror})") from err
    if not file.is_file():
        raise DataError(f"data.path={path}: not a file")
    key = (str(file), stat.st_mtime_ns, stat.st_size, target, task, bool(dropna))
    return _read_cached(*key, tuple(features) if features else None, shown_path=path)


@functools.lru_cache(maxsize=8)
def _read_cached(file, _mtime, _size, target, task, dropna, features, shown_path) -> CsvTable:
    # Cached: the config check and the run both read the file; a changed file (mtime, size)
    # is read again.
    header, rows = _read_rows(Path(file), shown_path)
    if target not in header:
        raise DataError(
            f"data.target={target}: no such column in {shown_path}; columns: {', '.join(header)}"
        )
    chosen = list(features) if features else [c for c in header if c != target]
    unknown = [c for c in chosen if c not in header or c == target]
    if unknown:
        raise DataError(
            f"data.features={list(features)}: not feature columns of {shown_path}: "
            f"{', '.join(unknown)} (columns: {', '.join(header)}; the target is {target})"
        )
    if not chosen:
        raise DataError(f"data.path={shown_path}: no feature columns besides the target {target}")
    index = {name: i for i, name in enumerate(header)}
    x = _numeric_features(rows, chosen, index, shown_path)
    target_cells = [row[index[target]].strip() for row in rows]
    missing_target = np.array([c.lower() in MISSING for c in target_cells])

    bad_x = ~np.isfinite(x)
    y_numbers = _as_floats(target_cells)
    bad_y = missing_target | (
        np.zeros(len(rows), bool) if y_numbers is None else ~np.isfinite(y_numbers)
    )
    bad_rows = bad_x.any(axis=1) | bad_y
    if bad_rows.any() and not dropna:
        counts = [(name, int(bad_x[:, j].sum())) for j, name in enumerate(chosen)]
        counts.append((target, int(bad_y.sum())))
        named = ", ".join(f"{name} ({n})" for name, n in counts if n)
        raise DataError(
            f"data.path={shown_path}: missing or non-finite values (NaN/inf) in column(s) "
            f"{named}: fix the file, or set data.dropna=true to drop those "
            f"{int(bad_rows.sum())} rows"
        )
    keep = ~bad_rows
    if not keep.any():
        raise DataError(f"data.path={shown_path}: every row has a missing or non-finite value")
    x = x[keep]
    cells = [c for c, k in zip(target_cells, keep, strict=True) if k]
    y, resolved_task, classes = _target(cells, target, task)
    return CsvTable(
        path=Path(file),
        sha256=file_sha256(Path(file)),
        target=target,
        task=resolved_task,
        features=tuple(chosen),
        classes=classes,
        x=x,
        y=y,
        rows_in_file=len(rows),
        rows_dropped=int(bad_rows.sum()),
    )


def _read_rows(file: Path, shown_path: str) -> tuple[list[str], list[list[str]]]:
    try:
        text = file.read_bytes().decode("utf-8-sig")
    except OSError as err:
        raise DataError(f"data.path={shown_path}: cannot read it ({err.strerror})") from err
    except UnicodeDecodeError as err:
        raise DataError(f"data.path={shown_path}: not a UTF-8 text file") from err
    if not text.strip():
        raise DataError(f"data.path={shown_path}: the file is empty")
    try:
        table = [row for row in csv.reader(text.splitlines()) if any(c.strip() for c in row)]
    except csv.Error as err:
        raise DataError(f"data.path={shown_path}: not valid CSV ({err})") from err
    header = [c.strip() for c in table[0]]
    if len(set(header)) != len(header) or "" in header:
        repeated = sorted({c for c in header if header.count(c) > 1 or c == ""})
        raise DataError(
            f"data.path={shown_path}: the header needs a unique name for every column "
            f"(repeated or empty: {', '.join(repr(c) for c in repeated)})"
        )
    rows = table[1:]
    if not rows:
        raise DataError(f"data.path={shown_path}: a header but no data rows")
    for number, row in enumerate(rows, start=2):
        if len(row) != len(header):
            raise DataError(
                f"data.path={shown_path}: line {number} has {len(row)} fields, "
                f"the header has {len(header)}"
            )
    return header, rows


def _as_floats(cells: list[str]) -> np.ndarray | None:
    """The cells as numbers (missing -> NaN), or None if any cell is text."""
    out = np.empty(len(cells))
    for i, cell in enumerate(cells):
        if cell.strip().lower() in MISSING:
            out[i] = math.nan
            continue
        try:
            out[i] = float(cell)
        except ValueError:
            return None
    return out


def _numeric_features(rows, chosen, index, shown_path) -> np.ndarray:
    x = np.empty((len(rows), len(chosen)))
    text_columns = []
    for j, name in enumerate(chosen):
        column = _as_floats([row[index[name]] for row in rows])
        if column is None:
            example = next(
                (r[index[name]] for r in rows if _as_floats([r[index[name]]]) is None), ""
            )
            text_columns.append(f"{name} (e.g. {example.strip()!r})")
        else:
            x[:, j] = column
    if text_columns:
        raise DataError(
            f"data.path={shown_path}: feature columns must be numeric; not numeric: "
            f"{', '.join(text_columns)} (choose columns with data.features=[...])"
        )
    return x


def _target(cells: list[str], target: str, task: str) -> tuple[np.ndarray, str, tuple[str, ...]]:
    """The target as class indices or reals, the task, and the class labels."""
    numbers = _as_floats(cells)
    integers = numbers is not None and all(_is_integer_text(c) for c in cells)
    # Labels are compared as what they mean: "1" and "01" are one class, 1.0 and 1.00 too.
    if integers:
        keys = [int(c) for c in cells]
    elif numbers is not None:
        keys = list(numbers)
    else:
        keys = cells
    distinct = sorted(set(keys))
    shown = [str(k) if not isinstance(k, float) else f"{k:g}" for k in distinct]
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
            example = next(c for c in cells if _as_floats([c]) is None)
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
    index = {key: i for i, key in enumerate(distinct)}
    return np.array([index[k] for k in keys], dtype=np.int64), task, tuple(shown)


def _is_integer_text(cell: str) -> bool:
    text = cell.strip().lstrip("+-")
    return text.isdigit()


def _show(value) -> str:
    return "null" if value is None else str(value)
