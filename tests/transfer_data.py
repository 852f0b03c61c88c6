"""Tiny generated domains for the transfer tests (seconds, no downloads)."""
from __future__ import annotations

import numpy as np

from vqrec_fast.data import SeqDataset
from vqrec_fast.transfer.domains import leave_one_out

WORDS = ["red", "blue", "pen", "paper", "lab", "glass", "film", "drama", "tape", "box", "ink", "tube"]


def tiny_domain(name: str, n_items: int, n_users: int, seed: int, max_len: int = 8) -> SeqDataset:
    """Users walk through items in small steps (so sequences carry signal); texts are word mixes."""
    rng = np.random.default_rng(seed)
    seqs = []
    for _ in range(n_users):
        n = int(rng.integers(4, max_len + 3))
        start = int(rng.integers(1, n_items + 1))
        seqs.append([(start + 2 * t + int(rng.integers(0, 2)) - 1) % n_items + 1 for t in range(n)])
    texts = [""] + [f"{WORDS[i % len(WORDS)]} {WORDS[(i * 5) % len(WORDS)]} {name} item {i}" for i in range(n_items)]
    tr, va, te = leave_one_out(seqs, max_len)
    return SeqDataset(name, ["[PAD]"] + [f"{name}{i}" for i in range(n_items)], texts, tr, va, te)


def small_pretrain_config(out: str, **kw):
    from vqrec_fast.transfer.pretrain import PretrainConfig

    base = dict(out=out, codes="random", num_subspaces=4, codebook_size=16, hidden=16, n_heads=2, inner=32,
                dropout=0.0, attn_dropout=0.0, epochs=1, batch_size=48, threads=1, max_len=8)
    base.update(kw)
    return PretrainConfig(**base)


def ddp_worker(rank: int, world: int, rendezvous: str, out: str, max_steps: int) -> None:
    """One process of a gloo DDP pre-training run (for torch.multiprocessing.spawn).

    The ranks meet through a file (`rendezvous`, not yet existing), not a TCP port: a port picked
    as free by the parent can be taken by any other connection on the machine in the seconds the
    workers take to start."""
    import torch
    import torch.distributed as dist

    from vqrec_fast.transfer.pretrain import pretrain

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=world)
    try:
        res = pretrain(small_pretrain_config(out), [tiny_domain("a", 40, 60, 0), tiny_domain("b", 30, 50, 1)],
                       log=lambda *_: None, max_steps=max_steps)
        torch.save(res["model"].state_dict(), f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()
