"""Turning raw interactions into per-user sequences and leave-one-out splits.

The filters here are the only places rows are dropped; each returns how many it removed so the
loaders can record it in ``SeqDataset.meta["filters"]`` (``vqrec-fast data inspect`` prints them).
"""
from __future__ import annotations

from collections import Counter, defaultdict
from typing import Dict, Hashable, List, Sequence, Tuple

from .dataset import Examples

MIN_SEQUENCE_LEN = 3  # one training position, one validation target, one test target


def leave_one_out(sequences: Sequence[Sequence[int]], max_history: int = 50
                  ) -> Tuple[Examples, Examples, Examples]:
    """Splits full sequences (oldest first) into train/valid/test examples.

    For a sequence s of length n: training examples (s[:i][-max_history:], s[i]) for
    i = 1..n-3, validation (s[:n-2][-max_history:], s[n-2]), test (s[:n-1][-max_history:], s[n-1]).
    Training rows are ordered by user, then by position, and carry their user index.
    """
    if max_history < 1:
        raise ValueError(f"max_history must be >= 1, got {max_history}")
    tr_h, tr_t, tr_u, va_h, va_t, te_h, te_t = [], [], [], [], [], [], []
    for u, s in enumerate(sequences):
        s = list(s)
        n = len(s)
        if n < MIN_SEQUENCE_LEN:
            raise ValueError(f"sequence of user {u} has {n} items; leave-one-out needs >= {MIN_SEQUENCE_LEN}")
        for i in range(1, n - 2):
            tr_h.append(s[max(0, i - max_history):i])
            tr_t.append(s[i])
            tr_u.append(u)
        va_h.append(s[max(0, n - 2 - max_history):n - 2])
        va_t.append(s[n - 2])
        te_h.append(s[max(0, n - 1 - max_history):n - 1])
        te_t.append(s[n - 1])
    users = list(range(len(sequences)))
    return (Examples.from_lists(tr_h, tr_t, tr_u), Examples.from_lists(va_h, va_t, users),
            Examples.from_lists(te_h, te_t, users))


def k_core(rows: List[Tuple[Hashable, Hashable]], user_k: int, item_k: int) -> Tuple[List[int], int]:
    """Iterative k-core on (user, item) rows: repeatedly drops rows whose user has < user_k rows
    or whose item has < item_k rows, until none remains. Returns kept row indices (in input order)
    and the number of rows removed."""
    keep = list(range(len(rows)))
    while True:
        uc = Counter(rows[r][0] for r in keep)
        ic = Counter(rows[r][1] for r in keep)
        nxt = [r for r in keep if uc[rows[r][0]] >= user_k and ic[rows[r][1]] >= item_k]
        if len(nxt) == len(keep):
            return keep, len(rows) - len(keep)
        keep = nxt


def group_by_user(users: Sequence[Hashable], items: Sequence[Hashable], times: Sequence[float]
                  ) -> Tuple[List[Hashable], List[List[Hashable]]]:
    """Per-user item lists sorted by time. The sort is stable, so ties keep input order; users
    come in order of first appearance. Returns (user ids, sequences of raw item ids)."""
    by_user: Dict[Hashable, List[int]] = defaultdict(list)
    for r, u in enumerate(users):
        by_user[u].append(r)
    order = list(by_user)
    seqs = [[items[r] for r in sorted(by_user[u], key=lambda r: times[r])] for u in order]
    return order, seqs


def drop_short(user_ids: List[Hashable], seqs: List[List[Hashable]], min_len: int = MIN_SEQUENCE_LEN
               ) -> Tuple[List[Hashable], List[List[Hashable]], int, int]:
    """Drops users whose sequence is shorter than min_len (leave-one-out needs 3 items).
    Returns kept users, kept sequences, users removed, interactions removed."""
    keep = [k for k, s in enumerate(seqs) if len(s) >= min_len]
    removed_rows = sum(len(s) for s in seqs) - sum(len(seqs[k]) for k in keep)
    return [user_ids[k] for k in keep], [seqs[k] for k in keep], len(seqs) - len(keep), removed_rows


def filter_record(name: str, removed: int, unit: str, why: str) -> Dict[str, object]:
    """One entry of meta["filters"]: which filter, how many rows/users it removed, and why."""
    return {"filter": name, "removed": int(removed), "unit": unit, "why": why}
