"""``vqrec-fast pretrain``: multi-domain VQ-Rec pre-training (one process, or DDP under torchrun:
``torchrun --nproc_per_node N -m vqrec_fast.cli pretrain ...``)."""
from __future__ import annotations


def run(args) -> int:
    from ..transfer.pretrain import PretrainConfig, pretrain

    cfg = PretrainConfig(domains=args.domain, out=args.out, codes=args.codes, text_encoder=args.text_encoder,
                         hidden=args.hidden, inner=args.inner, n_layers=args.layers, rho=args.rho, lr=args.lr,
                         batch_size=args.batch_size, epochs=args.epochs, checkpoint_every=args.checkpoint_every,
                         seed=args.seed, threads=args.threads)
    from ..transfer.distributed import world

    res = pretrain(cfg)
    if world()[0] == 0:
        print(f"checkpoint: {res['checkpoint']}  ({res['seconds']:.0f}s)")
    return 0


def register(sub) -> None:
    p = sub.add_parser("pretrain", help="pre-train VQ-Rec on several domains mixed in every batch")
    p.add_argument("--domain", action="append", required=True, help="dataset directory (repeat for each domain)")
    p.add_argument("--out", default="runs/pretrain", help="run folder: pretrained.pt, epoch_N.pt, config.json")
    p.add_argument("--codes", choices=["opq", "random"], default="opq", help="one code space fitted on the union")
    p.add_argument("--text-encoder", default="auto", choices=["auto", "minilm", "hash"])
    p.add_argument("--hidden", type=int, default=300)
    p.add_argument("--inner", type=int, default=256)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--rho", type=float, default=0.75, help="semi-synthetic replacement rate (0 = no such negative)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, default=8192, help="global batch (all processes), <= 8192")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--checkpoint-every", type=int, default=1, help="write epoch_N.pt every N epochs")
    p.add_argument("--seed", type=int, default=2023)
    p.add_argument("--threads", type=int, default=0, help="torch threads per process (0 = default)")
    p.set_defaults(func=run)
