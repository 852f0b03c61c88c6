"""``vqrec-fast finetune``: fine-tune a pre-trained VQ-Rec on a new domain (or train from scratch)."""
from __future__ import annotations

import json


def run(args) -> int:
    from ..train.config import apply_overrides, parse_sets, TrainConfig
    from ..transfer.domains import load_domain
    from ..transfer.finetune import FinetuneOptions, finetune

    cfg = apply_overrides(TrainConfig(), {"data": args.data, "out": args.out, "epochs": args.epochs,
                                          "patience": args.patience, "seed": args.seed, "threads": args.threads,
                                          "batch_size": args.batch_size, "text_encoder": args.text_encoder,
                                          **parse_sets(args.set)})
    opts = FinetuneOptions(pretrained=args.pretrained or "", codes=args.codes, fix_encoder=not args.train_encoder,
                           align=args.align, align_epochs=args.align_epochs, train_fraction=args.train_fraction)
    res = finetune(cfg, load_domain(args.data), opts)
    print(json.dumps({"test": res["test"], "best_epoch": res["best_epoch"]}, indent=1))
    return 0


def register(sub) -> None:
    p = sub.add_parser("finetune", help="fine-tune a pre-trained VQ-Rec on a target domain (fresh codes, alignment)")
    p.add_argument("--data", required=True, help="target dataset directory")
    p.add_argument("--pretrained", help="pretrained.pt from `vqrec-fast pretrain` (omit: train from scratch)")
    p.add_argument("--out", default="runs/finetune")
    p.add_argument("--codes", choices=["fresh", "pretrain", "published", "random"], default="fresh",
                   help="fresh = new strict OPQ index on the target's training items (the paper)")
    p.add_argument("--align", choices=["learned", "random", "none"], default="learned")
    p.add_argument("--align-epochs", type=int, default=5, help="epochs in which only the permutations train")
    p.add_argument("--train-encoder", action="store_true", help="also train the Transformer (default: fixed)")
    p.add_argument("--train-fraction", type=float, default=1.0)
    p.add_argument("--epochs", type=int, default=300)
    p.add_argument("--patience", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=2048)
    p.add_argument("--text-encoder", default="auto", choices=["auto", "minilm", "hash"])
    p.add_argument("--seed", type=int, default=2023)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="any train config key (see vqrec-fast train)")
    p.set_defaults(func=run)
