"""Raw Amazon Reviews 2018 files as a user downloads them, processed as UniSRec did for the
paper's datasets: ``<Category>.csv`` ratings (``item,user,rating,timestamp``, no header) and
``meta_<Category>.json.gz`` (one JSON object per line with ``asin``, ``title``, ``category``,
``brand``).

Steps (each filter's removed-row count lands in ``meta["filters"]``):
1. exact duplicate rating rows are dropped (UniSRec keeps a set of rows);
2. ratings of items without a metadata record are dropped;
3. iterative user/item k-core (default 5/5);
4. each user's ratings sorted by timestamp (stable: ties keep file order), users in order of
   first appearance in the file, items indexed in order of first appearance in those sequences;
5. text "title. category. brand." cleaned by ``text_clean.item_text``;
6. leave-one-out split with histories capped at ``max_history`` (50).
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Tuple

from ._build import build_dataset
from ._io import dataset_name, iter_json_lines, read_lines
from .dataset import SeqDataset
from .errors import DataFormatError
from .split import filter_record, group_by_user, k_core
from .text_clean import AMAZON_FIELDS, item_text


def read_ratings(path: Path) -> List[Tuple[str, str, float, int]]:
    """(user, item, rating, timestamp) per line of an Amazon 2018 ratings CSV."""
    rows = []
    for ln, line in enumerate(read_lines(path), start=1):
        parts = line.split(",")
        if len(parts) != 4:
            raise DataFormatError(path, f"expected 4 comma-separated fields item,user,rating,timestamp, "
                                        f"got {len(parts)}", line=ln)
        item, user, rating, ts = parts
        if not item or not user:
            raise DataFormatError(path, "empty item or user id", line=ln)
        try:
            rows.append((user, item, float(rating), int(ts)))
        except ValueError:
            raise DataFormatError(path, f"rating {rating!r} / timestamp {ts!r} is not a number", line=ln) from None
    return rows


def read_meta(path: Path, fields=AMAZON_FIELDS) -> Dict[str, str]:
    """asin -> cleaned item text. A repeated asin keeps its first record (as UniSRec does)."""
    texts: Dict[str, str] = {}
    for ln, obj in iter_json_lines(path):
        asin = obj.get("asin")
        if not isinstance(asin, str) or not asin:
            raise DataFormatError(path, "record has no 'asin'", line=ln, field="asin")
        if asin not in texts:
            texts[asin] = item_text(obj, fields)
    return texts


def load_amazon2018(directory, category: Optional[str] = None, user_k: int = 5, item_k: int = 5,
                    max_history: int = 50) -> SeqDataset:
    """Loads ``DIR/<category>.csv`` + ``DIR/meta_<category>.json.gz`` (category defaults to the
    single ``meta_*.json.gz`` in DIR) into a leave-one-out ``SeqDataset``."""
    d, category = dataset_name(directory, category, "meta_", ".json.gz", "meta_*.json.gz")
    ratings_path, meta_path = d / f"{category}.csv", d / f"meta_{category}.json.gz"
    rows = read_ratings(ratings_path)
    texts = read_meta(meta_path)
    filters = []
    seen, uniq = set(), []
    for r in rows:
        if r not in seen:
            seen.add(r)
            uniq.append(r)
    filters.append(filter_record("duplicate_rows", len(rows) - len(uniq), "interactions",
                                 "identical (user, item, rating, timestamp) rows"))
    with_meta = [r for r in uniq if r[1] in texts]
    filters.append(filter_record("items_without_metadata", len(uniq) - len(with_meta), "interactions",
                                 f"items absent from {meta_path.name}"))
    keep, removed = k_core([(r[0], r[1]) for r in with_meta], user_k, item_k)
    filters.append(filter_record("k_core", removed, "interactions", f"user {user_k}-core, item {item_k}-core"))
    kept = [with_meta[k] for k in keep]
    users, seqs = group_by_user([r[0] for r in kept], [r[1] for r in kept], [r[3] for r in kept])
    if not seqs:
        raise DataFormatError(ratings_path, "no interactions left after filtering")
    return build_dataset(category, users, seqs, texts, max_history=max_history,
                         meta={"format": "amazon2018", "path": str(d)}, filters=filters)
