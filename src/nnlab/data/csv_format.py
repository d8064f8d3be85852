"""How a CSV file is written: its encoding, delimiter, decimal mark and thousands separator.

Spreadsheets write more than one kind of CSV. European Excel writes `;` between fields and a
decimal comma (`1,5`); others write tabs; files from older tools are Latin-1, not UTF-8; Excel
puts a byte-order mark before the header. Each setting is `auto` (read from the start of the
file) or given (`data.delimiter`, `data.decimal`, `data.encoding`). Only the first 64 KiB are
read here; pandas parses the whole file (nnlab.data.csv_table).
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

from nnlab.data.datasets import DataError

DELIMITERS = {",": ",", ";": ";", "tab": "\t", "\t": "\t", "|": "|"}
DELIMITER_CHOICES = ("auto", ",", ";", "tab", "|")
DECIMAL_CHOICES = ("auto", ".", ",")
ENCODING_CHOICES = ("auto", "utf-8", "latin-1")
SAMPLE_BYTES = 1 << 16
SAMPLE_LINES = 50
# 1,5 or 1.234,5: a number written with a decimal comma (and dots between thousands)
DECIMAL_COMMA = re.compile(r"^\s*[-+]?(\d+|\d{1,3}(\.\d{3})+),\d+\s*$")


@dataclass(frozen=True)
class CsvFormat:
    encoding: str  # as pandas takes it: utf-8-sig (a BOM is skipped) or latin-1
    delimiter: str
    decimal: str
    thousands: str  # inside quoted numbers: "1,234.5" (or "1.234,5" with a decimal comma)
    header: list[str]  # the header row's names, stripped

    @property
    def shown_delimiter(self) -> str:
        return "tab" if self.delimiter == "\t" else self.delimiter


def detect_format(
    file: Path, shown_path: str, delimiter: str = "auto", decimal: str = "auto", encoding="auto"
) -> CsvFormat:
    """The file's format, from its first lines; DataError (one line) when it cannot be read."""
    try:
        with open(file, "rb") as f:
            head = f.read(SAMPLE_BYTES)
    except OSError as err:
        raise DataError(f"data.path={shown_path}: cannot read it ({err.strerror})") from err
    if b"\x00" in head:
        raise DataError(f"data.path={shown_path}: not a text file (it holds NUL bytes)")
    encoding, text = _decode(head, shown_path, encoding)
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if len(head) == SAMPLE_BYTES and len(lines) > 1:
        lines = lines[:-1]  # the last line of the sample may be cut short
    if not lines:
        raise DataError(f"data.path={shown_path}: the file is empty")
    sample = lines[:SAMPLE_LINES]
    sep = _delimiter(sample) if delimiter == "auto" else DELIMITERS[delimiter]
    rows = list(csv.reader(sample, delimiter=sep))
    if decimal == "auto":
        cells = [c for row in rows[1:] for c in row]
        decimal = "," if sep != "," and any(DECIMAL_COMMA.match(c) for c in cells) else "."
    header = [c.strip() for c in rows[0]]
    return CsvFormat(encoding, sep, decimal, "." if decimal == "," else ",", header)


def _decode(head: bytes, shown_path: str, encoding: str) -> tuple[str, str]:
    if encoding == "latin-1":
        return "latin-1", head.decode("latin-1")
    try:
        return "utf-8-sig", _decode_utf8(head)
    except UnicodeDecodeError as err:
        if encoding == "utf-8":
            raise DataError(
                f"data.encoding=utf-8: {shown_path} is not valid UTF-8 (byte {err.start}); "
                "allowed: auto, utf-8, latin-1"
            ) from err
        # Not UTF-8: Latin-1 reads any byte; spreadsheets on Windows write it (or cp1252).
        return "latin-1", head.decode("latin-1")


def _decode_utf8(head: bytes) -> str:
    try:
        return head.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        if err.start >= len(head) - 3:  # a character cut at the sample's end
            return head[: err.start].decode("utf-8-sig")
        raise


def _delimiter(lines: list[str]) -> str:
    """The delimiter that splits the sample's lines into the same number of fields, the most
    fields winning; a comma when none does."""
    best, best_fields = ",", 1
    for candidate in (",", ";", "\t", "|"):
        counts = {len(row) for row in csv.reader(lines, delimiter=candidate)}
        if len(counts) == 1 and (fields := counts.pop()) > best_fields:
            best, best_fields = candidate, fields
    return best


def delimiter_hint(fmt: CsvFormat, text: str) -> str:
    """For a header that did not split: the delimiters it does hold, as a hint."""
    seen = [
        ("tab" if c == "\t" else c, text.count(c))
        for c in (",", ";", "\t", "|")
        if c != fmt.delimiter and c in text
    ]
    if not seen:
        return ""
    shown, count = max(seen, key=lambda s: s[1])
    return (
        f"; the header holds '{shown}' {count} times: set data.delimiter='{shown}' "
        f"(read with '{fmt.shown_delimiter}')"
    )
