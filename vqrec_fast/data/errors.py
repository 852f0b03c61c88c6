"""Errors raised by loaders: they always name the file and, where there is one, the line."""
from __future__ import annotations

from typing import Optional


class DataFormatError(ValueError):
    def __init__(self, path, message: str, line: Optional[int] = None, field: Optional[str] = None):
        where = f"{path}"
        if line is not None:
            where += f", line {line}"
        if field is not None:
            where += f", field {field!r}"
        super().__init__(f"{where}: {message}")
        self.path, self.line, self.field = str(path), line, field
