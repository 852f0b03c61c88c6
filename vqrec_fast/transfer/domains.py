"""Domains for pre-training and transfer: load a dataset directory of any supported format, and
mix several datasets into one item-id space.

Formats: UniSRec atomic files (``*.train.inter``), Amazon JSON (``*.inter.json`` +
``*.item.json``: user -> item list in time order, item -> fields) and RecBole atomic
(``*.inter`` with timestamps + ``*.item``). The data pipeline's ``vqrec_fast.data.load`` is
used when this build has it; the small readers below cover builds without it. Splits are
leave-one-out by time: valid = the second-to-last item, test = the last, train = every earlier
prefix (history >= 1 item), histories keep their last ``max_history`` items.

Mixing (``MixedDomains``): domain k's internal ids 1..n_k become offset_k + 1..offset_k + n_k
(offset_0 = 0, offset_k = n_0 + ... + n_{k-1}); id 0 stays the padding item.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np

from ..data import Examples, SeqDataset, load_atomic
from ..data.errors import DataFormatError


def leave_one_out(seqs: Sequence[Sequence[int]], max_history: int = 50):
    """Item sequences (internal ids, time order) -> (train, valid, test) Examples.
    Sequences shorter than 3 give no example (they cannot fill all three splits)."""
    tr_h, tr_t, va_h, va_t, te_h, te_t = [], [], [], [], [], []
    for s in seqs:
        s = list(s)
        if len(s) < 3:
            continue
        for t in range(1, len(s) - 2):
            tr_h.append(s[max(0, t - max_history):t])
            tr_t.append(s[t])
        va_h.append(s[max(0, len(s) - 2 - max_history):-2])
        va_t.append(s[-2])
        te_h.append(s[max(0, len(s) - 1 - max_history):-1])
        te_t.append(s[-1])
    return (Examples.from_lists(tr_h, tr_t), Examples.from_lists(va_h, va_t), Examples.from_lists(te_h, te_t))


def _amazon_json(d: Path, max_history: int) -> SeqDataset:
    inter = sorted(d.glob("*.inter.json"))
    if len(inter) != 1:
        raise FileNotFoundError(f"{d}: expected one *.inter.json, found {[p.name for p in inter]}")
    name = inter[0].name[: -len(".inter.json")]
    item_path = d / f"{name}.item.json"
    users = json.loads(inter[0].read_text(encoding="utf-8"))
    meta = json.loads(item_path.read_text(encoding="utf-8"))
    raw_items = sorted(meta, key=lambda k: int(k) if k.isdigit() else k)
    index = {r: i + 1 for i, r in enumerate(raw_items)}
    seqs = []
    for u, items in users.items():
        try:
            seqs.append([index[str(i)] for i in items])
        except KeyError as exc:
            raise DataFormatError(inter[0], f"user {u!r} has item {exc.args[0]!r} missing from {item_path.name}") from None

    def text(m: Dict) -> str:
        parts = [str(m.get(k) or "").strip() for k in ("title", "categories", "brand")]
        return ". ".join(p for p in parts if p)

    texts = [""] + [text(meta[r]) for r in raw_items]
    tr, va, te = leave_one_out(seqs, max_history)
    return SeqDataset(name, ["[PAD]"] + raw_items, texts, tr, va, te, meta={"format": "amazon_json", "path": str(d)})


def _recbole(d: Path, max_history: int) -> SeqDataset:
    inter = sorted(p for p in d.glob("*.inter") if ".train." not in p.name)
    if len(inter) != 1:
        raise FileNotFoundError(f"{d}: expected one *.inter, found {[p.name for p in inter]}")
    name = inter[0].stem
    item_path = d / f"{name}.item"
    lines = item_path.read_text(encoding="utf-8", errors="replace").splitlines()
    head = lines[0].split("\t")
    raw_items, texts = [], [""]
    for ln, line in enumerate(lines[1:], start=2):
        parts = line.split("\t")
        if len(parts) != len(head):
            raise DataFormatError(item_path, f"expected {len(head)} fields, got {len(parts)}", line=ln)
        raw_items.append(parts[0])
        texts.append(" ".join(p.strip() for p in parts[1:] if p.strip()))
    index = {r: i + 1 for i, r in enumerate(raw_items)}
    rows = inter[0].read_text(encoding="utf-8").splitlines()
    cols = [c.split(":")[0] for c in rows[0].split("\t")]
    ui, ii, ti = cols.index("user_id"), cols.index("item_id"), cols.index("timestamp")
    per_user: Dict[str, List] = {}
    for ln, line in enumerate(rows[1:], start=2):
        p = line.split("\t")
        if p[ii] not in index:
            raise DataFormatError(inter[0], f"item {p[ii]!r} is not in {item_path.name}", line=ln)
        per_user.setdefault(p[ui], []).append((float(p[ti]), ln, index[p[ii]]))
    seqs = [[it for _, _, it in sorted(v)] for v in per_user.values()]  # time order, file order on ties
    tr, va, te = leave_one_out(seqs, max_history)
    return SeqDataset(name, ["[PAD]"] + raw_items, texts, tr, va, te, meta={"format": "recbole", "path": str(d)})


def load_domain(path, max_history: int = 50) -> SeqDataset:
    """A dataset directory in any supported format -> SeqDataset."""
    d = Path(path)
    if not d.is_dir():
        raise FileNotFoundError(f"{d}: not a directory")
    try:  # the data pipeline's loaders, when this build has them
        from ..data.load import load_dataset  # type: ignore

        return load_dataset(d)
    except ImportError:
        pass
    if any(d.glob("*.train.inter")):
        return load_atomic(d)
    if any(d.glob("*.inter.json")):
        return _amazon_json(d, max_history)
    if any(d.glob("*.inter")) and any(d.glob("*.item")):
        return _recbole(d, max_history)
    raise ValueError(f"{d}: unknown dataset format (no *.train.inter, *.inter.json or *.inter + *.item)")


def _shift(ex: Examples, off: int) -> Examples:
    return Examples(ex.offsets.copy(), ex.items + off, ex.targets + off)


@dataclass
class MixedDomains:
    """Several datasets in one item-id space. ``dataset`` is a SeqDataset over the union (its
    splits are the concatenated, shifted splits); ``offsets`` int64 [n_domains + 1] so domain k
    owns ids offsets[k] + 1 .. offsets[k + 1]; ``domain_of`` int64 [num_items + 1] (-1 for 0)."""

    names: List[str]
    dataset: SeqDataset
    offsets: np.ndarray
    domain_of: np.ndarray

    @classmethod
    def mix(cls, datasets: Sequence[SeqDataset]) -> "MixedDomains":
        if not datasets:
            raise ValueError("need at least one dataset to mix")
        offs = np.zeros(len(datasets) + 1, dtype=np.int64)
        offs[1:] = np.cumsum([d.num_items for d in datasets])
        raw, text = ["[PAD]"], [""]
        splits = {"train": [], "valid": [], "test": []}
        for d, off in zip(datasets, offs[:-1]):
            raw += [f"{d.name}:{r}" for r in d.item_raw_ids[1:]]
            text += d.item_text[1:]
            for s in splits:
                splits[s].append(_shift(getattr(d, s), int(off)))
        merged = {s: _concat(v) for s, v in splits.items()}
        name = "+".join(d.name for d in datasets)
        ds = SeqDataset(name, raw, text, merged["train"], merged["valid"], merged["test"], meta={"format": "mixed"})
        dom = np.full(int(offs[-1]) + 1, -1, dtype=np.int64)
        for k in range(len(datasets)):
            dom[offs[k] + 1 : offs[k + 1] + 1] = k
        return cls([d.name for d in datasets], ds, offs, dom)


def _concat(parts: Sequence[Examples]) -> Examples:
    items = np.concatenate([p.items for p in parts])
    targets = np.concatenate([p.targets for p in parts])
    lens = np.concatenate([p.lengths for p in parts])
    offsets = np.zeros(len(lens) + 1, dtype=np.int64)
    np.cumsum(lens, out=offsets[1:])
    return Examples(offsets, items, targets)
