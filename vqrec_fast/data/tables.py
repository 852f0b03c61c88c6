"""Row tables from delimited text, JSON lines or Parquet, with the file line of every row so
that errors can point at it. Column names drop RecBole's ``:type`` suffix (``item_id:token`` ->
``item_id``)."""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Sequence

from ._io import decode, iter_json_lines, read_bytes
from .errors import DataFormatError


@dataclass
class Table:
    path: Path
    columns: List[str]
    rows: List[Dict[str, object]]  # one dict per row
    lines: List[int]  # file line of each row (row number for Parquet)

    def require(self, names: Sequence[str], role: str) -> None:
        missing = [n for n in names if n not in self.columns]
        if missing:
            raise DataFormatError(self.path, f"missing {role} column(s) {missing}; columns are {self.columns}",
                                  line=1 if self.path.suffix not in (".parquet", ".jsonl") else None)


def _delimited(path: Path, delimiter: str) -> Table:
    text = decode(path, read_bytes(path))
    if not text.strip():
        raise DataFormatError(path, "file is empty")
    # RecBole atomic files are plain TSV (quotes are data); CSV files follow RFC 4180 quoting.
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quoting=quoting)
    header = next(reader)
    columns = [h.strip().split(":")[0] for h in header]
    if len(set(columns)) != len(columns):
        raise DataFormatError(path, f"duplicate column names in header {header}", line=1)
    rows, lines = [], []
    line = reader.line_num
    for rec in reader:
        ln = line + 1
        line = reader.line_num
        if not rec or (len(rec) == 1 and not rec[0].strip()):
            continue
        if len(rec) != len(columns):
            raise DataFormatError(path, f"expected {len(columns)} fields ({delimiter!r}-separated), got {len(rec)}",
                                  line=ln)
        rows.append(dict(zip(columns, rec)))
        lines.append(ln)
    return Table(path, columns, rows, lines)


def _jsonl(path: Path) -> Table:
    rows, lines, columns = [], [], {}
    for ln, obj in iter_json_lines(path):
        rows.append(obj)
        lines.append(ln)
        for k in obj:
            columns.setdefault(k, None)
    if not rows:
        raise DataFormatError(path, "file is empty")
    return Table(path, list(columns), rows, lines)


def _parquet(path: Path) -> Table:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ImportError(f"{path}: reading Parquet needs pyarrow (pip install pyarrow)") from None
    if not path.exists():
        raise FileNotFoundError(f"{path}: file not found")
    try:
        tab = pq.read_table(path)
    except Exception as exc:  # pyarrow raises its own error types
        raise DataFormatError(path, f"not a readable Parquet file ({exc})") from None
    if tab.num_rows == 0:
        raise DataFormatError(path, "file is empty")
    rows = tab.to_pylist()
    return Table(path, list(tab.column_names), rows, list(range(1, len(rows) + 1)))


def read_table(path) -> Table:
    """By extension: .csv (comma), .tsv/.inter/.item/.txt (tab), .jsonl/.json (JSON lines),
    .parquet; a trailing .gz is allowed for text formats."""
    path = Path(path)
    ext = path.suffixes[-2] if path.suffix == ".gz" and len(path.suffixes) > 1 else path.suffix
    if ext == ".csv":
        return _delimited(path, ",")
    if ext in (".tsv", ".inter", ".item", ".txt"):
        return _delimited(path, "\t")
    if ext in (".jsonl", ".json"):
        return _jsonl(path)
    if ext == ".parquet":
        return _parquet(path)
    raise ValueError(f"{path}: unknown table format {ext!r} (use .csv, .tsv, .jsonl or .parquet)")
