"""UniSRec / RecBole atomic files: ``X.train.inter``, ``X.valid.inter``, ``X.test.inter`` (one
row per example: space-separated history, oldest first, and the next item, as 0-based item
indices) and ``X.text`` (raw item id, text), with ``X.item2index`` mapping raw ids to indices.

The split files cap histories at 50 items, so the full sequences are rebuilt from them (see
``_rebuild_sequences``) and checked row by row; statistics come from the rebuilt sequences."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from ._io import dataset_name, read_lines, split_tsv
from .dataset import Examples, SeqDataset, Sequences
from .errors import DataFormatError

INTER_HEADER = ("user_id:token", "item_id_list:token_seq", "item_id:token")


def _read_index(path: Path) -> Dict[str, int]:
    out: Dict[str, int] = {}
    for ln, line in enumerate(read_lines(path), start=1):
        parts = split_tsv(path, line, ln, 2)
        try:
            idx = int(parts[1])
        except ValueError:
            raise DataFormatError(path, f"index {parts[1]!r} is not an integer", line=ln) from None
        if parts[0] in out:
            raise DataFormatError(path, f"duplicate id {parts[0]!r}", line=ln)
        out[parts[0]] = idx
    return out


def read_inter(path: Path, num_items: int) -> Tuple[Examples, List[str]]:
    """Reads one ``.inter`` split; returns examples over internal ids (index + 1) and user ids."""
    lines = read_lines(path)
    header = tuple(h.strip() for h in lines[0].split("\t"))
    if header != INTER_HEADER:
        raise DataFormatError(path, f"header must be {'<TAB>'.join(INTER_HEADER)}, got {lines[0]!r}", line=1)
    histories, targets, users = [], [], []
    for ln, line in enumerate(lines[1:], start=2):
        parts = split_tsv(path, line, ln, 3)
        try:
            hist = [int(t) + 1 for t in parts[1].split()]
        except ValueError:
            raise DataFormatError(path, f"non-integer item in {parts[1]!r}", line=ln, field="item_id_list") from None
        try:
            target = int(parts[2]) + 1
        except ValueError:
            raise DataFormatError(path, f"item {parts[2]!r} is not an integer", line=ln, field="item_id") from None
        for it in hist + [target]:
            if not 1 <= it <= num_items:
                raise DataFormatError(
                    path, f"item index {it - 1} is outside [0, {num_items})", line=ln,
                    field="item_id" if it == target else "item_id_list",
                )
        histories.append(hist)
        targets.append(target)
        users.append(parts[0])
    return Examples.from_lists(histories, targets), users


def _rebuild_sequences(d: Path, name: str, train: Examples, train_users: List[str],
                       valid: Examples, valid_users: List[str], test: Examples,
                       test_users: List[str]) -> Sequences:
    """Full sequence of each test user: training rows are prefixes (history -> next item), so the
    sequence is the shortest training history followed by the training targets in history order,
    then the validation and test targets. Training rows are chained by matching each row's
    (capped) history against the tail of the sequence built so far, which also checks them;
    the validation and test histories must equal the tail before their targets."""
    vpos = {u: e for e, u in enumerate(valid_users)}
    rows: Dict[str, List[int]] = defaultdict(list)
    for e, u in enumerate(train_users):
        rows[u].append(e)
    seqs: List[List[int]] = []
    for e_t, u in enumerate(test_users):
        if u not in vpos:
            raise DataFormatError(d / f"{name}.valid.inter", f"user {u!r} of the test split has no validation row")
        e_v = vpos[u]
        mine = rows.pop(u, [])
        if mine:
            first = min(mine, key=lambda e: len(train.history(e)))
            seq = train.history(first).tolist()
            # most recent window of history -> train rows that continue it (rarely more than one)
            by_hist: Dict[Tuple[int, ...], List[int]] = defaultdict(list)
            for e in mine:
                by_hist[tuple(train.history(e).tolist())].append(e)
            cap = max(len(train.history(e)) for e in mine)
            for _ in range(len(mine)):
                cand = by_hist.get(tuple(seq[-cap:])) or by_hist.get(tuple(seq))
                if not cand:
                    raise DataFormatError(d / f"{name}.train.inter",
                                          f"training rows of user {u!r} are not prefixes of one sequence")
                seq.append(int(train.targets[cand.pop(0)]))
        else:
            seq = valid.history(e_v).tolist()
        seq.append(int(valid.targets[e_v]))
        if valid.history(e_v).tolist() != seq[-1 - len(valid.history(e_v)):-1]:
            raise DataFormatError(d / f"{name}.valid.inter",
                                  f"validation history of user {u!r} does not continue its training rows",
                                  line=e_v + 2)
        seq.append(int(test.targets[e_t]))
        if test.history(e_t).tolist() != seq[-1 - len(test.history(e_t)):-1]:
            raise DataFormatError(d / f"{name}.test.inter",
                                  f"test history of user {u!r} does not continue its validation row",
                                  line=e_t + 2)
        seqs.append(seq)
    if rows:
        u = next(iter(rows))
        raise DataFormatError(d / f"{name}.train.inter", f"user {u!r} has training rows but no test row",
                              line=rows[u][0] + 2)
    return Sequences.from_lists(seqs)


def load_atomic(directory, name: Optional[str] = None) -> SeqDataset:
    """Loads ``DIR/NAME.{train,valid,test}.inter`` + ``NAME.text`` (+ ``NAME.item2index``).

    ``name`` defaults to the prefix of the single ``*.train.inter`` file in the directory.
    Without ``NAME.item2index`` the item indices follow the order of ``NAME.text``.
    """
    d, name = dataset_name(directory, name, "", ".train.inter", "*.train.inter")
    text_path, index_path = d / f"{name}.text", d / f"{name}.item2index"
    texts: Dict[str, str] = {}
    for ln, line in enumerate(read_lines(text_path)[1:], start=2):
        parts = split_tsv(text_path, line, ln, 2)
        if parts[0] in texts:
            raise DataFormatError(text_path, f"duplicate item id {parts[0]!r}", line=ln)
        texts[parts[0]] = parts[1].strip()
    if index_path.exists():
        index = _read_index(index_path)
    else:  # order of the text file
        index = {raw: i for i, raw in enumerate(texts)}
    n = len(index)
    raw_ids = ["[PAD]"] + [""] * n
    for raw, i in index.items():
        if not 0 <= i < n or raw_ids[i + 1]:
            raise DataFormatError(index_path, f"index {i} of {raw!r} is duplicated or outside [0, {n})")
        raw_ids[i + 1] = raw
    missing = [r for r in raw_ids[1:] if r not in texts]
    if missing:
        raise DataFormatError(text_path, f"{len(missing)} items have no text, e.g. {missing[:3]}")
    item_text = [""] + [texts[r] for r in raw_ids[1:]]
    train, train_users = read_inter(d / f"{name}.train.inter", n)
    valid, valid_users = read_inter(d / f"{name}.valid.inter", n)
    test, users = read_inter(d / f"{name}.test.inter", n)
    train.users = np.asarray(_user_positions(train_users, users), dtype=np.int64)
    seqs = _rebuild_sequences(d, name, train, train_users, valid, valid_users, test, users)
    return SeqDataset(name, raw_ids, item_text, train, valid, test, user_raw_ids=users,
                      meta={"format": "atomic", "path": str(d), "filters": []}, sequences=seqs)


def _user_positions(row_users: List[str], users: List[str]):
    pos = {u: k for k, u in enumerate(users)}
    return [pos.get(u, -1) for u in row_users]
