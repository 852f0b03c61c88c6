"""Amazon-style JSON pairs, e.g. the 2014 Office files: ``X.inter.json`` (user -> list of items
in time order) and ``X.item.json`` (item -> {"title", "description", "brand", "categories"}).

Text is "title. categories. brand." cleaned like the 2018 data (``text_clean``), so the
description is left out by default as in UniSRec; pass ``text_fields`` to choose others."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from ._build import build_dataset
from ._io import dataset_name, read_json
from .dataset import SeqDataset
from .errors import DataFormatError
from .text_clean import item_text

DEFAULT_FIELDS = ("title", "categories", "brand")


def load_amazon_json(directory, name: Optional[str] = None, text_fields: Sequence[str] = DEFAULT_FIELDS,
                     max_history: int = 50) -> SeqDataset:
    d, name = dataset_name(directory, name, "", ".inter.json", "*.inter.json")
    inter_path, item_path = d / f"{name}.inter.json", d / f"{name}.item.json"
    inter, items = read_json(inter_path), read_json(item_path)
    if not isinstance(inter, dict) or not isinstance(items, dict):
        bad = inter_path if not isinstance(inter, dict) else item_path
        raise DataFormatError(bad, "top level must be a JSON object")
    texts = {}
    for k, rec in items.items():
        if not isinstance(rec, dict):
            raise DataFormatError(item_path, f"item {k!r}: expected an object with text fields", field=k)
        texts[str(k)] = item_text(rec, text_fields)
    users, seqs = [], []
    for u, seq in inter.items():
        if not isinstance(seq, list):
            raise DataFormatError(inter_path, f"user {u!r}: expected a list of item ids", field=u)
        for it in seq:
            if str(it) not in texts:
                raise DataFormatError(inter_path, f"user {u!r}: item {it!r} is not in {item_path.name}", field=u)
        users.append(u)
        seqs.append([str(it) for it in seq])
    return build_dataset(name, users, seqs, texts, max_history=max_history,
                         meta={"format": "amazon_json", "path": str(d), "text_fields": list(text_fields)})
