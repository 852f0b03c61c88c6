"""Interaction logs (user, item, timestamp) plus an item table with text columns: RecBole
``X.inter`` + ``X.item`` (e.g. ml-100k) and generic CSV / TSV / JSON-lines / Parquet files.

Each user's interactions are sorted by timestamp (stable: ties keep file order); the item text
joins the chosen columns, each cleaned like Amazon metadata ("Toy Story. 1995. Animation.")."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional, Sequence

from ._build import build_dataset
from ._io import dataset_name
from .dataset import SeqDataset
from .errors import DataFormatError
from .split import group_by_user
from .tables import Table, read_table
from .text_clean import clean_field


def item_texts(table: Table, item_col: str, text_cols: Optional[Sequence[str]]) -> Dict[str, str]:
    """item id -> text from an item table; every column but the id when text_cols is None."""
    table.require([item_col], "item id")
    cols = [c for c in table.columns if c != item_col] if text_cols is None else list(text_cols)
    table.require(cols, "text")
    out: Dict[str, str] = {}
    for rec, ln in zip(table.rows, table.lines):
        key = str(rec[item_col])
        if key in out:
            raise DataFormatError(table.path, f"duplicate item id {key!r}", line=ln, field=item_col)
        vals = [rec.get(c) for c in cols]
        out[key] = " ".join(clean_field(v) for v in vals if v is not None and str(v).strip()).strip()
    return out


def load_interactions(inter_path, item_path, user_col: str = "user_id", item_col: str = "item_id",
                      time_col: Optional[str] = "timestamp", text_cols: Optional[Sequence[str]] = None,
                      item_id_col: Optional[str] = None, name: Optional[str] = None,
                      max_history: int = 50) -> SeqDataset:
    """Generic loader. ``inter_path``: one row per interaction with ``user_col``, ``item_col`` and
    (unless None: file order is time order) ``time_col``. ``item_path``: one row per item with
    ``item_id_col`` (defaults to ``item_col``) and the text columns. An interaction with an item
    missing from the item table is an error naming its line."""
    inter, items = read_table(inter_path), read_table(item_path)
    texts = item_texts(items, item_id_col or item_col, text_cols)
    inter.require([user_col, item_col] + ([time_col] if time_col else []), "interaction")
    users, its, times = [], [], []
    for k, (rec, ln) in enumerate(zip(inter.rows, inter.lines)):
        u, it = str(rec[user_col]), str(rec[item_col])
        if it not in texts:
            raise DataFormatError(inter.path, f"unknown item id {it!r} (not in {items.path.name})",
                                  line=ln, field=item_col)
        if time_col is None:
            t = float(k)
        else:
            try:
                t = float(rec[time_col])
            except (TypeError, ValueError):
                raise DataFormatError(inter.path, f"timestamp {rec[time_col]!r} is not a number",
                                      line=ln, field=time_col) from None
        users.append(u)
        its.append(it)
        times.append(t)
    user_ids, seqs = group_by_user(users, its, times)
    name = name or Path(inter_path).name.split(".")[0]
    return build_dataset(name, user_ids, seqs, texts, max_history=max_history,
                         meta={"format": "interactions", "path": str(inter_path), "item_path": str(item_path),
                               "text_cols": list(text_cols) if text_cols else None})


def load_recbole(directory, name: Optional[str] = None, text_cols: Optional[Sequence[str]] = None,
                 max_history: int = 50) -> SeqDataset:
    """RecBole atomic ``DIR/NAME.inter`` (user_id, item_id, timestamp) + ``DIR/NAME.item``;
    text columns chosen by name (default: every item column but item_id)."""
    d, name = dataset_name(directory, name, "", ".inter", "NAME.inter",
                           exclude=(".train.inter", ".valid.inter", ".test.inter"))
    ds = load_interactions(d / f"{name}.inter", d / f"{name}.item", text_cols=text_cols, name=name,
                           max_history=max_history)
    ds.meta["format"] = "recbole"
    return ds
