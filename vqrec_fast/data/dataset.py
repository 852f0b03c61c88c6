"""The in-memory dataset every loader produces and every trainer consumes.

Internal item ids: 0 is the padding item, real items are 1..num_items (so tables indexed by
item id have num_items + 1 rows). Each split is a list of examples (history -> target) kept in
CSR form: ``offsets`` int64 [E + 1], ``items`` int64 [offsets[-1]] (oldest first) and
``targets`` int64 [E]; example e has history items[offsets[e]:offsets[e + 1]].

Besides the splits, a dataset keeps every user's full time-ordered sequence (``Sequences``, also
CSR): the splits cap histories at 50 items, so only the full sequences give honest statistics.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional

import numpy as np
import torch


@dataclass
class Examples:
    offsets: np.ndarray  # int64 [E + 1]
    items: np.ndarray  # int64 [offsets[-1]]
    targets: np.ndarray  # int64 [E]
    users: Optional[np.ndarray] = None  # int64 [E], user index per example (optional)

    def __post_init__(self) -> None:
        self.offsets = np.asarray(self.offsets, dtype=np.int64)
        self.items = np.asarray(self.items, dtype=np.int64)
        self.targets = np.asarray(self.targets, dtype=np.int64)
        if self.users is not None:
            self.users = np.asarray(self.users, dtype=np.int64)
        if self.offsets.ndim != 1 or len(self.offsets) != len(self.targets) + 1:
            raise ValueError(f"offsets must have len(targets) + 1 = {len(self.targets) + 1} entries")
        if len(self.offsets) and (self.offsets[0] != 0 or self.offsets[-1] != len(self.items)):
            raise ValueError("offsets must start at 0 and end at len(items)")

    def __len__(self) -> int:
        return int(len(self.targets))

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def history(self, e: int) -> np.ndarray:
        return self.items[self.offsets[e] : self.offsets[e + 1]]

    @classmethod
    def from_lists(cls, histories: List[List[int]], targets: List[int], users=None) -> "Examples":
        lens = np.fromiter((len(h) for h in histories), dtype=np.int64, count=len(histories))
        offsets = np.zeros(len(histories) + 1, dtype=np.int64)
        np.cumsum(lens, out=offsets[1:])
        items = np.fromiter((i for h in histories for i in h), dtype=np.int64, count=int(offsets[-1]))
        return cls(offsets, items, np.asarray(targets, dtype=np.int64), None if users is None else np.asarray(users))

    def padded(self, max_len: int = 50, index: Optional[np.ndarray] = None) -> torch.Tensor:
        """Histories as int64 [E, L] (L = min(max_len, longest)), left-aligned, padded with 0
        at the end, each truncated to its most recent max_len items (RecBole's layout)."""
        idx = np.arange(len(self)) if index is None else np.asarray(index)
        lens = np.minimum(self.lengths[idx], max_len)
        L = int(lens.max()) if len(idx) else 0
        out = np.zeros((len(idx), max(L, 1) if len(idx) else 0), dtype=np.int64)
        ends = self.offsets[idx + 1]
        for r, (e, n) in enumerate(zip(ends, lens)):
            out[r, :n] = self.items[e - n : e]
        return torch.from_numpy(out)

    def subset(self, index: np.ndarray) -> "Examples":
        index = np.asarray(index, dtype=np.int64)
        hist = [self.history(int(e)).tolist() for e in index]
        users = None if self.users is None else np.asarray(self.users)[index]  # loaders may keep a list
        return Examples.from_lists(hist, np.asarray(self.targets)[index].tolist(), users)


@dataclass
class Sequences:
    """Every user's full, time-ordered item sequence in CSR form.

    ``offsets`` int64 [U + 1], ``items`` int64 [offsets[-1]] (internal ids, oldest first);
    user u's sequence is items[offsets[u]:offsets[u + 1]].
    """

    offsets: np.ndarray
    items: np.ndarray

    def __post_init__(self) -> None:
        self.offsets = np.asarray(self.offsets, dtype=np.int64)
        self.items = np.asarray(self.items, dtype=np.int64)
        if self.offsets.ndim != 1 or len(self.offsets) < 1 or self.offsets[0] != 0 \
                or self.offsets[-1] != len(self.items):
            raise ValueError("offsets must be 1-d, start at 0 and end at len(items)")

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, u: int) -> np.ndarray:
        return self.items[self.offsets[u] : self.offsets[u + 1]]

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    @classmethod
    def from_lists(cls, seqs: List[List[int]]) -> "Sequences":
        lens = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
        offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
        np.cumsum(lens, out=offsets[1:])
        items = np.fromiter((i for s in seqs for i in s), dtype=np.int64, count=int(offsets[-1]))
        return cls(offsets, items)


@dataclass
class SeqDataset:
    """Items with text, and train/valid/test examples over internal ids (0 = padding)."""

    name: str
    item_raw_ids: List[str]  # [num_items + 1]; entry 0 is "[PAD]"
    item_text: List[str]  # [num_items + 1]; entry 0 is ""
    train: Examples
    valid: Examples
    test: Examples
    user_raw_ids: Optional[List[str]] = None
    meta: Dict[str, object] = field(default_factory=dict)
    # Full per-user sequences (users in the order of the test split); None when a loader
    # cannot know them, in which case statistics fall back to the capped test rows.
    sequences: Optional[Sequences] = None

    @classmethod
    def from_sequences(cls, name: str, item_raw_ids: List[str], item_text: List[str],
                       sequences: List[List[int]], user_raw_ids: Optional[List[str]] = None,
                       max_history: int = 50, meta: Optional[Dict[str, object]] = None) -> "SeqDataset":
        """Leave-one-out split of full time-ordered sequences (internal ids, oldest first), as
        UniSRec writes its atomic files: the last item is the test target, the one before it the
        validation target, and every earlier position from the second on is a training target.
        Histories keep their most recent ``max_history`` items. Every sequence needs >= 3 items
        (loaders drop shorter ones and report it)."""
        from .split import leave_one_out

        train, valid, test = leave_one_out(sequences, max_history)
        return cls(name, item_raw_ids, item_text, train, valid, test, user_raw_ids=user_raw_ids,
                   meta=dict(meta or {}), sequences=Sequences.from_lists(sequences))

    @property
    def num_items(self) -> int:
        """Real items (the padding item excluded)."""
        return len(self.item_raw_ids) - 1

    @property
    def num_users(self) -> int:
        if self.user_raw_ids is not None:
            return len(self.user_raw_ids)
        return len(self.test)

    def item_index(self) -> Dict[str, int]:
        return {r: i for i, r in enumerate(self.item_raw_ids) if i > 0}

    def train_item_ids(self) -> np.ndarray:
        """Sorted internal ids of items that occur in the training split (history or target)."""
        return np.unique(np.concatenate([self.train.items, self.train.targets]))

    def num_interactions(self) -> int:
        """Interactions in the full sequences (each user's test history plus test target when the
        full sequences are unknown; that undercounts users with more than max_history items)."""
        if self.sequences is not None:
            return int(len(self.sequences.items))
        return int(len(self.test.items) + len(self.test.targets))

    def stats(self) -> Dict[str, float]:
        return {
            "users": self.num_users,
            "items": self.num_items,
            "interactions": self.num_interactions(),
            "train_examples": len(self.train),
            "valid_examples": len(self.valid),
            "test_examples": len(self.test),
            "avg_history_len_test": float(self.test.lengths.mean()) if len(self.test) else 0.0,
            "avg_sequence_len": (float(self.sequences.lengths.mean()) if self.sequences is not None
                                 and len(self.sequences) else float("nan")),
            "density": self.num_interactions() / max(1, self.num_users * self.num_items),
        }
