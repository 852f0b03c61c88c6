"""``vqrec-fast train | evaluate | recommend | baselines``."""
from __future__ import annotations

import json
from pathlib import Path


def _load_data(path: str):
    from ..data import load_atomic

    if not path:
        raise ValueError("no dataset: pass --data DIR (or set `data` in the config)")
    return load_atomic(path)


def _config(args):
    from ..train.config import load_config, parse_sets

    over = parse_sets(args.set)
    for key in ("data", "model", "codes", "out", "epochs", "seed", "threads"):
        v = getattr(args, key, None)
        if v is not None:
            over[key] = v
    if getattr(args, "no_progress", False):
        over["progress"] = False
    return load_config(args.config, over)


def run_train(args) -> int:
    from ..train import Trainer
    from ..train.config import example_yaml

    if args.print_config:
        print(example_yaml(), end="")
        return 0
    cfg = _config(args)
    ds = _load_data(cfg.data)
    print(f"{ds.name}: {ds.num_items} items, {len(ds.train)} training examples; model {cfg.model} -> {cfg.out}")
    Trainer(cfg, ds).fit(resume=args.resume)
    return 0


def run_evaluate(args) -> int:
    import torch

    from ..train import evaluate, load_trained
    from ..train.config import TrainConfig

    if args.threads:
        torch.set_num_threads(args.threads)
    ckpt = Path(args.run)
    model = load_trained(ckpt)
    cfg_path = (ckpt if ckpt.is_dir() else ckpt.parent) / "config.json"
    cfg = TrainConfig(**json.loads(cfg_path.read_text())) if cfg_path.exists() else TrainConfig()
    ds = _load_data(args.data or cfg.data)
    if ds.num_items != model.num_items:
        raise ValueError(f"{args.run}: model has {model.num_items} items, dataset {ds.name} has {ds.num_items}")
    out = {}
    for split in args.split.split(","):
        if split not in ("valid", "test"):
            raise ValueError(f"--split: unknown split {split!r} (valid, test)")
        out[split] = evaluate(model, getattr(ds, split), (10, 50), model.max_len, cfg.eval_batch_size, split)
        m = out[split]
        print(f"{split}: R@10 {m['recall@10']:.4f} N@10 {m['ndcg@10']:.4f} R@50 {m['recall@50']:.4f} "
              f"N@50 {m['ndcg@50']:.4f}  ({len(getattr(ds, split))} users, {m['eval_seconds']:.2f}s)")
    if args.json:
        print(json.dumps(out))
    return 0


def run_recommend(args) -> int:
    from ..train import load_trained
    from ..train.config import TrainConfig
    from ..train.recommend import add_text_items, parse_history, recommend

    run = Path(args.run)
    model = load_trained(run)
    run_dir = run if run.is_dir() else run.parent
    cfg_path = run_dir / "config.json"
    cfg = TrainConfig(**json.loads(cfg_path.read_text())) if cfg_path.exists() else TrainConfig()
    ds = _load_data(args.data or cfg.data)
    names = list(ds.item_raw_ids)
    texts = list(ds.item_text)
    if args.new_item:
        new_ids = add_text_items(model, run_dir, args.new_item)
        names += [f"[new {i + 1}]" for i in range(len(new_ids))]
        texts += list(args.new_item)
    index = ds.item_index()
    for h in args.history:
        hist = parse_history(h, index, args.internal_ids)
        scores, ids = recommend(model, [hist], args.k, exclude_history=args.exclude_history)
        print(f"history: {' '.join(names[i] for i in hist)}")
        for r, (s, i) in enumerate(zip(scores[0].tolist(), ids[0].tolist()), start=1):
            print(f"  {r:2d}. {names[i]:<12} {s:8.3f}  {texts[i][:90]}")
    return 0


def run_experiment(args) -> int:
    from ..train.experiment import run_baselines

    run_baselines(args.data, args.out, args.models.split(","), _config(args), resume=args.resume)
    return 0


def _common(p, data=True) -> None:
    p.add_argument("--config", help="YAML/TOML/JSON config file (every key: `vqrec-fast train --print-config`)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override one config key (repeatable)")
    if data:
        p.add_argument("--data", help="dataset directory (atomic files)")
    p.add_argument("--out", help="run directory")
    p.add_argument("--epochs", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--threads", type=int, help="torch CPU threads (0 = default)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run from its last.pt")


def register(sub) -> None:
    p = sub.add_parser("train", help="train VQ-Rec or a baseline, early-stopped, test of the best checkpoint")
    _common(p)
    p.add_argument("--model", choices=["vqrec", "sasrec", "text"])
    p.add_argument("--codes", help="published | random | opq | path to .index/.npy/.pt")
    p.add_argument("--print-config", action="store_true", help="print every config key with its default and doc")
    p.set_defaults(func=run_train)

    p = sub.add_parser("evaluate", help="full-ranking Recall/NDCG@10,50 of a trained run")
    p.add_argument("run", help="run directory (its best.pt) or a checkpoint file")
    p.add_argument("--data", help="dataset directory (default: the run's)")
    p.add_argument("--split", default="valid,test", help="valid, test or valid,test")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--json", action="store_true", help="also print the metrics as JSON")
    p.set_defaults(func=run_evaluate)

    p = sub.add_parser("recommend", help="top-k items for histories (raw item ids), optionally over new item texts")
    p.add_argument("run", help="run directory or checkpoint")
    p.add_argument("--history", action="append", required=True, help="space-separated item ids, oldest first (repeatable)")
    p.add_argument("--internal-ids", action="store_true", help="history holds internal ids (1..N), not raw ids")
    p.add_argument("--new-item", action="append", metavar="TEXT", help="text of a new item to rank too (VQ-Rec, codes=opq)")
    p.add_argument("-k", type=int, default=10)
    p.add_argument("--exclude-history", action="store_true", help="do not recommend items already in the history")
    p.add_argument("--data", help="dataset directory (default: the run's)")
    p.set_defaults(func=run_recommend)

    # "baselines", not "experiment": the transfer branch owns the `experiment` command group
    p = sub.add_parser("baselines", help="VQ-Rec and baselines on one dataset, same loop, one results table")
    _common(p, data=False)
    p.add_argument("--data", required=True, help="dataset directory")
    p.add_argument("--models", default="vqrec-published,sasrec,text,vqrec-opq,vqrec-random",
                   help="comma list of vqrec-published, vqrec-opq, vqrec-random, sasrec, text")
    p.set_defaults(func=run_experiment)
