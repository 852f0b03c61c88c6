"""``vqrec-fast experiment transfer``: the whole transfer study in one command."""
from __future__ import annotations


def run_transfer(args) -> int:
    from ..transfer.study import StudyConfig, run_study

    if not args.source:
        args.source = ["../shared/data/amazon2014-office", "../shared/data/ml-100k"]
    sc = StudyConfig(sources=args.source, target=args.target, out=args.out, hidden=args.hidden, inner=args.inner,
                     num_subspaces=args.subspaces, pretrain_epochs=args.pretrain_epochs,
                     pretrain_batch=args.pretrain_batch, pretrain_long_fraction=args.pretrain_long_fraction, epochs=args.epochs, patience=args.patience,
                     align_epochs=args.align_epochs, align_lr=args.align_lr, batch_size=args.batch_size,
                     fractions=[float(f) for f in args.fractions.split(",") if f], text_encoder=args.text_encoder,
                     seed=args.seed, jobs=args.jobs)
    run_study(sc)
    return 0


def register(sub) -> None:
    help_ = "pre-train on source domains, fine-tune on a target, ablations, analyses"
    if "experiment" in sub.choices:
        # `experiment` is already a one-dataset command (train CLI): argparse cannot nest under it,
        # so the study gets its own name until the two are unified
        t = sub.add_parser("experiment-transfer", help=help_)
    else:
        p = sub.add_parser("experiment", help="multi-run experiments (transfer study)")
        exp = p.add_subparsers(dest="experiment", metavar="EXPERIMENT")
        exp.required = True
        t = exp.add_parser("transfer", help=help_)
    t.add_argument("--source", action="append", help="source dataset directory (repeat); default office + ml-100k")
    t.add_argument("--target", default="../shared/data/amazon2018-scientific")
    t.add_argument("--out", default="runs/transfer")
    t.add_argument("--hidden", type=int, default=300)
    t.add_argument("--subspaces", type=int, default=32, help="D code digits per item")
    t.add_argument("--inner", type=int, default=256)
    t.add_argument("--pretrain-epochs", type=int, default=10)
    t.add_argument("--pretrain-batch", type=int, default=8192)
    t.add_argument("--pretrain-long-fraction", type=float, default=1.0,
                   help="keep this fraction of pre-training rows whose history is cut at max_len (ml-100k has many)")
    t.add_argument("--epochs", type=int, default=50, help="max fine-tuning / scratch epochs (early stopping)")
    t.add_argument("--patience", type=int, default=10)
    t.add_argument("--align-epochs", type=int, default=5)
    t.add_argument("--align-lr", type=float, default=1e-3, help="learning rate of the permutation parameters")
    t.add_argument("--batch-size", type=int, default=2048)
    t.add_argument("--fractions", default="0.1,0.25,0.5", help="training-data fractions for the curve (1.0 is the main run)")
    t.add_argument("--text-encoder", default="auto", choices=["auto", "minilm", "hash"])
    t.add_argument("--seed", type=int, default=2023)
    t.add_argument("--jobs", type=int, default=2, help="runs in parallel (one thread each)")
    t.set_defaults(func=run_transfer)
