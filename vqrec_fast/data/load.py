"""One entry point that recognises a dataset directory's format (used by the CLI)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from .amazon2018 import load_amazon2018
from .amazon_json import load_amazon_json
from .atomic import load_atomic
from .dataset import SeqDataset
from .interactions import load_interactions, load_recbole

FORMATS = ("auto", "atomic", "recbole", "amazon_json", "amazon2018", "interactions")


def detect_format(path) -> str:
    """atomic (*.train.inter), amazon_json (*.inter.json), amazon2018 (meta_*.json.gz),
    recbole (*.inter + *.item); a file is an interaction table (needs an item table)."""
    p = Path(path)
    if p.is_file():
        return "interactions"
    if not p.is_dir():
        raise FileNotFoundError(f"{p}: no such file or directory")
    if any(p.glob("*.train.inter")):
        return "atomic"
    if any(p.glob("*.inter.json")):
        return "amazon_json"
    if any(p.glob("meta_*.json.gz")):
        return "amazon2018"
    if any(p.glob("*.inter")) and any(p.glob("*.item")):
        return "recbole"
    raise ValueError(f"{p}: cannot tell the dataset format (no *.train.inter, *.inter.json, "
                     f"meta_*.json.gz or *.inter + *.item); name it with format=")


def load_dataset(path, format: str = "auto", items: Optional[str] = None, **kwargs) -> SeqDataset:
    """Loads a dataset directory (or an interaction file with ``items=`` its item table)."""
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
    fmt = detect_format(path) if format == "auto" else format
    if fmt == "interactions":
        if items is None:
            raise ValueError(f"{path}: an interaction file needs its item table (items=PATH)")
        return load_interactions(path, items, **kwargs)
    loader = {"atomic": load_atomic, "recbole": load_recbole, "amazon_json": load_amazon_json,
              "amazon2018": load_amazon2018}[fmt]
    return loader(path, **kwargs)
