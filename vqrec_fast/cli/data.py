"""``vqrec-fast data inspect PATH``: load a dataset in any supported format and print statistics."""
from __future__ import annotations

import json


def add_dataset_args(p) -> None:
    """Options naming a dataset (shared by data, encode and codes commands)."""
    from vqrec_fast.data.load import FORMATS

    p.add_argument("path", help="dataset directory (UniSRec atomic *.train.inter, RecBole *.inter + *.item, "
                                "Amazon *.inter.json + *.item.json, raw Amazon 2018 meta_*.json.gz + *.csv) "
                                "or an interaction file (CSV/TSV/JSONL/Parquet; then give --items)")
    p.add_argument("--format", default="auto", choices=FORMATS,
                   help="dataset format; 'auto' recognises it from the file names (default)")
    p.add_argument("--items", default=None,
                   help="item table (CSV/TSV/JSONL/Parquet) when PATH is an interaction file")
    p.add_argument("--text-cols", default=None,
                   help="comma-separated item columns joined into the item text (RecBole and generic "
                        "tables; default: every column but the item id)")


def load_from_args(args):
    from vqrec_fast.data import load_dataset

    kwargs = {}
    if args.text_cols:
        kwargs["text_cols"] = [c.strip() for c in args.text_cols.split(",") if c.strip()]
    return load_dataset(args.path, format=args.format, items=args.items, **kwargs)


def inspect(args) -> int:
    ds = load_from_args(args)
    stats = ds.stats()
    stats["train_items"] = int(len(ds.train_item_ids()))
    stats["empty_texts"] = sum(1 for t in ds.item_text[1:] if not t.strip())
    filters = ds.meta.get("filters", [])
    if args.json:
        print(json.dumps({"name": ds.name, "format": ds.meta.get("format"), "stats": stats, "filters": filters},
                         indent=2))
        return 0
    print(f"{ds.name} ({ds.meta.get('format')})")
    for k, v in stats.items():
        print(f"  {k:22s} {v:,.4f}" if isinstance(v, float) else f"  {k:22s} {v:,}")
    for f in filters:
        print(f"  filter {f['filter']}: removed {f['removed']:,} {f['unit']} ({f['why']})")
    return 0


def register(sub) -> None:
    p = sub.add_parser("data", help="inspect datasets")
    dsub = p.add_subparsers(dest="data_command", metavar="SUBCOMMAND")
    dsub.required = True
    q = dsub.add_parser("inspect", help="load a dataset and print users/items/interactions and split sizes",
                        description="Loads PATH and prints its statistics: users, items, interactions (full "
                                    "sequences), split sizes, items in the training split, empty texts, and how "
                                    "many rows each documented filter removed.")
    add_dataset_args(q)
    q.add_argument("--json", action="store_true", help="print the statistics as JSON")
    q.set_defaults(func=inspect)
