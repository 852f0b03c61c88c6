"""From raw-id sequences to a SeqDataset: internal ids 1..num_items in order of first appearance
(UniSRec's item2index order), padding row 0, leave-one-out splits with capped histories."""
from __future__ import annotations

from typing import Dict, Hashable, List, Optional

from .dataset import SeqDataset
from .split import drop_short, filter_record


def build_dataset(name: str, user_ids: List[Hashable], raw_seqs: List[List[Hashable]],
                  texts: Dict[Hashable, str], max_history: int = 50,
                  meta: Optional[Dict[str, object]] = None,
                  filters: Optional[List[Dict[str, object]]] = None) -> SeqDataset:
    """``texts`` must have an entry for every item in ``raw_seqs`` (loaders check this with the
    file and line of the offending interaction). Users with < 3 items are dropped and reported."""
    filters = list(filters or [])
    user_ids, raw_seqs, n_users, n_rows = drop_short(user_ids, raw_seqs)
    if n_users:
        filters.append(filter_record("min_sequence_len", n_rows, "interactions",
                                     f"{n_users} users with < 3 interactions (leave-one-out needs 3)"))
    index: Dict[Hashable, int] = {}
    for s in raw_seqs:
        for it in s:
            if it not in index:
                index[it] = len(index) + 1
    unused = sum(1 for r in texts if r not in index)
    if unused:
        filters.append(filter_record("items_without_interactions", unused, "items",
                                     "items in the item table that no kept sequence uses"))
    raw_ids = ["[PAD]"] + [str(r) for r in index]
    item_text = [""] + [texts[r] for r in index]
    seqs = [[index[it] for it in s] for s in raw_seqs]
    m = dict(meta or {})
    m["filters"] = filters
    return SeqDataset.from_sequences(name, raw_ids, item_text, seqs,
                                     user_raw_ids=[str(u) for u in user_ids],
                                     max_history=max_history, meta=m)
