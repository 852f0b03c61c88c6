"""File reading shared by the loaders: strict UTF-8, errors that name the file and line."""
from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Iterator, List, Tuple

from .errors import DataFormatError


def read_bytes(path: Path) -> bytes:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: file not found")
    raw = path.read_bytes()
    if path.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise DataFormatError(path, f"not a valid gzip file ({exc})") from None
    return raw


def decode(path: Path, raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataFormatError(path, f"not valid UTF-8 (byte {exc.start})", line=line) from None


def read_lines(path: Path) -> List[str]:
    """Lines of a UTF-8 text file (optionally .gz) without the trailing newline; '\\r' is
    stripped. Raises DataFormatError for an empty file or invalid UTF-8."""
    path = Path(path)
    text = decode(path, read_bytes(path))
    lines = [ln[:-1] if ln.endswith("\r") else ln for ln in text.split("\n")]
    if lines and lines[-1] == "":
        lines.pop()
    if not lines:
        raise DataFormatError(path, "file is empty")
    return lines


def read_json(path: Path):
    """A whole-file JSON document; a syntax error names its line."""
    path = Path(path)
    text = decode(path, read_bytes(path))
    if not text.strip():
        raise DataFormatError(path, "file is empty")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataFormatError(path, f"invalid JSON: {exc.msg}", line=exc.lineno) from None


def iter_json_lines(path: Path) -> Iterator[Tuple[int, dict]]:
    """(line number, object) for each non-blank line of a JSON-lines file (optionally .gz)."""
    path = Path(path)
    for ln, line in enumerate(read_lines(path), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataFormatError(path, f"invalid JSON: {exc.msg}", line=ln) from None
        if not isinstance(obj, dict):
            raise DataFormatError(path, f"expected a JSON object, got {type(obj).__name__}", line=ln)
        yield ln, obj


def split_tsv(path: Path, line: str, ln: int, n: int) -> List[str]:
    parts = line.split("\t")
    if len(parts) != n:
        raise DataFormatError(path, f"expected {n} tab-separated fields, got {len(parts)}", line=ln)
    return parts


def dataset_name(directory, name, prefix: str, suffix: str, what: str, exclude=()) -> Tuple[Path, str]:
    """(directory, name): ``name`` as given, else X from the single PREFIX X SUFFIX file in the
    directory (files ending in one of ``exclude`` are ignored)."""
    d = Path(directory)
    if not d.is_dir():
        raise FileNotFoundError(f"{d}: not a directory")
    if name is None:
        found = sorted(p.name[len(prefix): -len(suffix)] for p in d.glob(f"{prefix}*{suffix}")
                       if not p.name.endswith(tuple(exclude)))
        if len(found) != 1:
            raise FileNotFoundError(f"{d}: expected exactly one {what} file, found {found}")
        name = found[0]
    return d, name
