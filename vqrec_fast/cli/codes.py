"""``vqrec-fast codes fit|import|report``: item codes from vectors, from a published faiss
index, and how well they tell items apart."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ._artifacts import record
from .data import add_dataset_args, load_from_args

CODES = "item_codes.npz"


def _write(codes, args, command: str, inputs) -> None:
    out = Path(args.out)
    codes.save(out / CODES)  # ItemCodes.save writes a temp file and renames it
    record(out, CODES, command, {k: v for k, v in vars(args).items() if k != "func"}, inputs)
    print(f"wrote {out / CODES}: {args_summary(codes)}")


def args_summary(codes) -> str:
    return f"{codes.method} codes uint8 {tuple(codes.codes.shape)} (row 0 = padding)"


def fit(args) -> int:
    from vqrec_fast.quantization import fit_codes

    ds = load_from_args(args)
    vecs = np.load(args.vectors, allow_pickle=False)
    if vecs.shape[0] != ds.num_items + 1:
        raise ValueError(f"{args.vectors}: {vecs.shape[0]} rows but the dataset has {ds.num_items} items + padding")
    ids = ds.train_item_ids() if not args.all_items else np.arange(1, ds.num_items + 1)
    codes = fit_codes(vecs, ids, method=args.method, num_subspaces=args.subspaces, bits=args.bits, seed=args.seed)
    _write(codes, args, "codes fit", [args.path, args.vectors] + ([args.items] if args.items else []))
    return 0


def import_(args) -> int:
    from vqrec_fast.quantization import import_faiss_index

    ds = load_from_args(args)
    vecs = np.load(args.vectors, allow_pickle=False) if args.vectors else None
    codes = import_faiss_index(args.index, ds, vectors=vecs, missing=args.missing, k=args.k)
    _write(codes, args, "codes import", [args.index, args.path] + ([args.vectors] if args.vectors else []))
    print(f"  {codes.info['coded_items']} codes from the index; {codes.info['uncoded_items']} items by rule: "
          f"{codes.info['uncoded_rule']}")
    return 0


def report(args) -> int:
    from vqrec_fast.quantization import ItemCodes, code_report

    r = code_report(ItemCodes.load(args.codes))
    if args.json:
        print(json.dumps(r, indent=2))
        return 0
    for k, v in r.items():
        if k == "entropy_bits":
            v = " ".join(f"{e:.2f}" for e in v)
        print(f"  {k:24s} {v:.4f}" if isinstance(v, float) else f"  {k:24s} {v}")
    return 0


def register(sub) -> None:
    from vqrec_fast.quantization import METHODS

    p = sub.add_parser("codes", help="fit, import and report item codes")
    csub = p.add_subparsers(dest="codes_command", metavar="SUBCOMMAND")
    csub.required = True

    f = csub.add_parser("fit", help="fit codes on training items' vectors and code every item",
                        description=f"Fits a quantizer on the vectors of items in the training split only "
                                    f"(strict: no valid/test leakage), codes every item and writes OUT/{CODES} "
                                    f"(codes + fitted quantizer, so new items can be coded later) and a manifest.")
    add_dataset_args(f)
    f.add_argument("--vectors", required=True, help="item vectors .npy, float32 [num_items + 1, dim] "
                                                    "(from `vqrec-fast encode`)")
    f.add_argument("--out", required=True, help="run directory to write into")
    f.add_argument("--method", default="opq", choices=METHODS,
                   help="opq: faiss OPQ{D},IVF1,PQ{D}x{bits}, inner product (the paper's); pq: no rotation; "
                        "rq: residual k-means (TIGER-style); random: random digits (default opq)")
    f.add_argument("--subspaces", type=int, default=32, help="code digits D (default 32)")
    f.add_argument("--bits", type=int, default=8, help="bits per digit, 1..8 (default 8: K = 256)")
    f.add_argument("--seed", type=int, default=0, help="k-means / random seed (default 0)")
    f.add_argument("--all-items", action="store_true",
                   help="fit on every item instead of training items only (leaks valid/test items)")
    f.set_defaults(func=fit)

    i = csub.add_parser("import", help="import codes from a published faiss index",
                        description="Reads an OPQ,IVF1,PQ 'strict' faiss index whose inverted list 0 holds one "
                                    "code per training item in increasing item order, and writes OUT/"
                                    f"{CODES}. Items outside training get codes from --vectors if given, else "
                                    "by --missing.")
    i.add_argument("index", help="faiss index file, e.g. Scientific.OPQ32,IVF1,PQ32x8.strict.index")
    add_dataset_args(i)
    i.add_argument("--out", required=True, help="run directory to write into")
    i.add_argument("--vectors", default=None, help="vectors .npy [num_items + 1, index dim] of the index's own "
                                                   "model, to code items without a published code exactly")
    i.add_argument("--missing", default="knn", choices=["knn", "random"],
                   help="rule for items without a code when --vectors is absent: knn = digit-wise vote of the "
                        "k training items with the most similar text; random = seeded by the raw id (default knn)")
    i.add_argument("--k", type=int, default=5, help="neighbours for --missing knn (default 5)")
    i.set_defaults(func=import_)

    r = csub.add_parser("report", help="distinctness and digit usage of saved codes",
                        description="Prints distinct-code ratio, items sharing a full code and per-digit usage "
                                    "entropy (log2 K = uniform) of an item_codes.npz.")
    r.add_argument("codes", help="item_codes.npz written by `codes fit` or `codes import`")
    r.add_argument("--json", action="store_true", help="print JSON")
    r.set_defaults(func=report)
