"""The user's own table: `data=csv data.path=my.csv data.target=price`.

A CSV with a header row, feature columns and one target column, read by pandas. The format
(delimiter, decimal comma, encoding) is detected or set (nnlab.data.csv_format); text feature
columns are one-hot encoded (nnlab.data.csv_features). The target decides the task unless
`data.task` says otherwise: integer or text labels are classes (two give a binary task, more
a multiclass one; labels are mapped to class indices in sorted order), floats are a
regression target. Everything after reading (splits, standardisation, batches, backends,
sweeps, figures) is what the built-in datasets use.

Every problem with the file is one line naming the key, the value and what is wrong, raised
as DataError before any run exists.
"""

from __future__ import annotations

import functools
import hashlib
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nnlab.data.csv_features import encode_features
from nnlab.data.csv_format import CsvFormat, delimiter_hint, detect_format
from nnlab.data.csv_target import NA_CELLS, read_target, resolve_target
from nnlab.data.datasets import BINARY, MULTICLASS, REGRESSION, DataError

TASK_CHOICES = ("auto", REGRESSION, BINARY, MULTICLASS)


@dataclass(frozen=True)
class CsvTable:
    """A CSV file read into arrays, with what the run records about it."""

    path: Path  # absolute
    sha256: str
    target: str
    task: str
    features: tuple[str, ...]  # the network's inputs: a column, or `<column>=<category>`
    classes: tuple[str, ...]  # the label of each class index; () for regression
    x: np.ndarray  # float64, rows x features
    y: np.ndarray  # class indices (int64) or real values (float64)
    rows_in_file: int
    rows_dropped: int
    columns: tuple[str, ...] = ()  # the feature columns of the file, in input order
    categories: dict = field(default_factory=dict)  # text column -> its one-hot categories
    format: dict = field(default_factory=dict)  # delimiter, decimal, encoding as read

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
            "columns": len(self.columns or self.features) + 1,
            "feature_columns": list(self.columns or self.features),
            "features": list(self.features),
            "one_hot": {k: list(v) for k, v in self.categories.items()},
            "target": self.target,
            "task": self.task,
            "classes": {str(i): label for i, label in enumerate(self.classes)},
            "format": self.format,
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
    categorical: str | bool = "auto",
    delimiter: str = "auto",
    decimal: str = "auto",
    encoding: str = "auto",
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
    chosen = tuple(features) if features else None
    settings = (str(categorical).lower(), delimiter, decimal, encoding)
    return _read_cached(*key, chosen, settings, shown_path=path)


@functools.lru_cache(maxsize=8)
def _read_cached(
    file, _mtime, _size, target, task, dropna, features, settings, shown_path
) -> CsvTable:
    # Cached: the config check and the run both read the file; a changed file (mtime, size)
    # is read again.
    categorical, delimiter, decimal, encoding = settings
    fmt = detect_format(Path(file), shown_path, delimiter, decimal, encoding)
    header = fmt.header
    if len(set(header)) != len(header) or "" in header:
        repeated = sorted({c for c in header if header.count(c) > 1 or c == ""})
        raise DataError(
            f"data.path={shown_path}: the header needs a unique name for every column "
            f"(repeated or empty: {', '.join(repr(c) for c in repeated)})"
        )
    if target not in header:
        hint = delimiter_hint(fmt, "".join(header)) if len(header) == 1 else ""
        raise DataError(
            f"data.target={target}: no such column in {shown_path}; columns: "
            f"{', '.join(header)}{hint}"
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
    # The hash is read beside the parse, in a thread (hashlib lets go of the GIL): ~0.15 s
    # of a 200 MB file's 0.5 s that the parse hides (BENCHMARKS.md section 12).
    with ThreadPoolExecutor(max_workers=1) as pool:
        hashing = pool.submit(file_sha256, Path(file))
        frame = _parse(Path(file), shown_path, fmt)
        sha256 = hashing.result()
    labels = read_target(frame[target], Path(file), fmt, target)
    frame = frame[chosen]
    encoded = encode_features(frame, chosen, shown_path, categorical, dropna)
    x, names, categories = encoded.x, encoded.names, encoded.categories
    bad_y = labels.missing | (
        np.zeros(len(x), bool) if labels.numbers is None else ~np.isfinite(labels.numbers)
    )
    bad_rows = ~np.isfinite(x.sum(axis=1)) | bad_y | encoded.missing  # NaN/inf in any cell
    if bad_rows.any() and not dropna:
        bad_x = ~np.isfinite(x)
        counts = [(name, int(bad_x[:, j].sum())) for j, name in enumerate(names)]
        counts.append((target, int(bad_y.sum())))
        named = ", ".join(f"{name} ({n})" for name, n in counts if n)
        first = int(np.argmax(bad_rows)) + 2  # the header is line 1
        raise DataError(
            f"data.path={shown_path}: missing or non-finite values (NaN/inf) in column(s) "
            f"{named}, the first at line {first}: fix the file, or set data.dropna=true to "
            f"drop those {int(bad_rows.sum())} rows"
        )
    keep = ~bad_rows
    if not keep.any():
        raise DataError(f"data.path={shown_path}: every row has a missing or non-finite value")
    if not keep.all():
        x = x[keep]
    y, resolved_task, classes = resolve_target(labels.kept(keep), target, task)
    return CsvTable(
        path=Path(file),
        sha256=sha256,
        target=target,
        task=resolved_task,
        features=tuple(names),
        classes=classes,
        x=x,  # column-major as pandas holds it: rows are drawn by index (a copy) anyway
        y=y,
        rows_in_file=len(keep),
        rows_dropped=int(bad_rows.sum()),
        columns=tuple(chosen),
        categories=categories,
        format={
            "delimiter": fmt.shown_delimiter,
            "decimal": fmt.decimal,
            "encoding": "utf-8" if fmt.encoding == "utf-8-sig" else fmt.encoding,
        },
    )


def _parse(file: Path, shown_path: str, fmt: CsvFormat):
    """The file parsed by pandas: numbers as int64 or float64, text as text."""
    import pandas as pd  # only data=csv needs pandas (~0.5 s): not every config check

    try:
        frame = pd.read_csv(
            file,
            sep=fmt.delimiter,
            decimal=fmt.decimal,
            thousands=fmt.thousands,
            encoding=fmt.encoding,
            header=0,
            names=fmt.header,
            index_col=False,  # a line with more fields than the header is an error
            na_values=NA_CELLS,
            keep_default_na=False,
            skipinitialspace=True,
            skip_blank_lines=True,
            engine="c",
        )
    except pd.errors.ParserError as err:
        found = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(err))
        if found:
            expected, line, saw = found.groups()
            raise DataError(
                f"data.path={shown_path}: line {line} has {saw} fields, the header has "
                f"{expected} (read with delimiter '{fmt.shown_delimiter}')"
            ) from None
        raise DataError(f"data.path={shown_path}: not valid CSV ({str(err).strip()})") from None
    except UnicodeDecodeError as err:
        raise DataError(
            f"data.path={shown_path}: not valid UTF-8 past its start (byte {err.start}); "
            "set data.encoding=latin-1"
        ) from None
    if frame.empty:
        raise DataError(f"data.path={shown_path}: a header but no data rows")
    return frame


def _show(value) -> str:
    return "null" if value is None else str(value)
