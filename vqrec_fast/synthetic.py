"""The embedded default dataset of ``vqrec-fast quickstart``: generated, not real.

What it is: a small made-up lab-supplies shop. Items belong to categories ("pipette tips",
"nitrile gloves", ...), and each has a short text like the Amazon files ("<adjective> <category
noun> <model>. Industrial & Scientific > <category>. <brand>."). Users move through categories
along a fixed random "what do people buy next" cycle (a buyer of centrifuge tubes often buys a
tube rack next), staying in a category with probability ``p_stay``; within a category, items
are drawn by a Zipf popularity. The next category is therefore predictable from the item text,
which is what text-derived codes can exploit. The numbers it produces say that the pipeline
runs end to end, not how well any model does on real data.

Files written (UniSRec/RecBole atomic format, read by ``vqrec_fast.data.load_atomic``):
NAME.train.inter (one row per training prefix), NAME.valid.inter, NAME.test.inter (leave-one-out),
NAME.text, NAME.item2index.
"""
from __future__ import annotations

from pathlib import Path
from typing import List

import numpy as np

CATEGORIES = [
    "pipette tips", "centrifuge tubes", "tube racks", "nitrile gloves", "safety goggles", "lab coats",
    "petri dishes", "inoculation loops", "microscope slides", "cover glasses", "beakers", "graduated cylinders",
    "magnetic stir bars", "hot plates", "digital scales", "weighing boats", "ph test strips", "buffer solutions",
    "multimeters", "soldering irons", "cable ties", "storage bins", "label printers", "spray bottles",
]
ADJECTIVES = ["sterile", "reusable", "disposable", "heavy duty", "compact", "precision", "economy", "premium",
              "autoclavable", "chemical resistant", "low retention", "antistatic"]
BRANDS = ["Labcraft", "SciPro", "Northbench", "Kestrel", "Vantor", "Helix Supply", "Orbitek", "Polaris Lab"]


def generate(num_items: int = 600, num_users: int = 1500, min_len: int = 5, max_len: int = 20, p_stay: float = 0.3,
             seed: int = 0):
    """Returns (item_texts [num_items], sequences: list of lists of 0-based item indices)."""
    if num_items < 2 or num_users < 1 or not 1 <= min_len <= max_len:
        raise ValueError(f"need num_items >= 2, num_users >= 1 and 1 <= min_len <= max_len, got "
                         f"{num_items}, {num_users}, {min_len}, {max_len}")
    rng = np.random.default_rng(seed)
    C = len(CATEGORIES)
    cat_of = rng.integers(0, C, num_items)
    items_of: List[np.ndarray] = [np.nonzero(cat_of == c)[0] for c in range(C)]
    texts = []
    for i in range(num_items):
        c = CATEGORIES[cat_of[i]]
        texts.append(f"{rng.choice(ADJECTIVES)} {c} {rng.choice(list('ABCDEFGHKMPRSTX'))}{rng.integers(10, 999)}. "
                     f"Industrial & Scientific > Lab Supplies > {c.title()}. {rng.choice(BRANDS)}.")
    # one random cycle through the non-empty categories: c is usually followed by successor[c]
    # (a single cycle, so a user never gets stuck among empty categories)
    order = rng.permutation(np.nonzero([len(ix) > 0 for ix in items_of])[0])
    successor = np.zeros(C, dtype=np.int64)
    successor[order] = np.roll(order, -1)
    pop = [1.0 / np.arange(1, len(ix) + 1) ** 0.8 for ix in items_of]
    seqs = []
    for _ in range(num_users):
        n = int(rng.integers(min_len, max_len + 1))
        c = int(rng.choice(order))
        seq: List[int] = []
        while len(seq) < n:
            p = pop[c] / pop[c].sum()
            item = int(items_of[c][rng.choice(len(p), p=p)])
            if not seq or item != seq[-1]:
                seq.append(item)
            # leave a one-item category at once when it is the only one (no immediate repeats)
            stay = rng.random() < p_stay and (len(items_of[c]) > 1 or len(order) == 1)
            c = c if stay else int(successor[c])
        seqs.append(seq)
    return texts, seqs


def write_atomic(directory, name: str = "Synthetic", cap: int = 50, **kw) -> Path:
    """Generates the dataset and writes the atomic files into ``directory``; returns it."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    texts, seqs = generate(**kw)
    header = "user_id:token\titem_id_list:token_seq\titem_id:token\n"
    rows = {"train": [], "valid": [], "test": []}
    for u, s in enumerate(seqs):
        n = len(s)
        for t in range(n - 3, 0, -1):  # longest prefix first, like the UniSRec files
            rows["train"].append((u, s[max(0, t - cap) : t], s[t]))
        rows["valid"].append((u, s[max(0, n - 2 - cap) : n - 2], s[n - 2]))
        rows["test"].append((u, s[max(0, n - 1 - cap) : n - 1], s[n - 1]))
    for split, rs in rows.items():
        with open(d / f"{name}.{split}.inter", "w") as f:
            f.write(header)
            for u, h, t in rs:
                f.write(f"{u}\t{' '.join(map(str, h))}\t{t}\n")
    with open(d / f"{name}.text", "w") as f:
        f.write("item_id:token\ttext:token_seq\n")
        for i, t in enumerate(texts):
            f.write(f"SYN{i:05d}\t{t}\n")
    with open(d / f"{name}.item2index", "w") as f:
        for i in range(len(texts)):
            f.write(f"SYN{i:05d}\t{i}\n")
    return d
