"""``vqrec-fast quickstart``: the whole pipeline in a few minutes, on a fresh machine, no data
needed: text -> vectors -> codes -> train VQ-Rec -> evaluate -> recommend (also for a brand-new
item known only by its text).

Without ``--data`` it generates the small embedded default dataset of ``vqrec_fast.synthetic``
(a made-up lab-supplies shop: synthetic, not real behaviour). Text vectors come from
all-MiniLM-L6-v2 when sentence-transformers and the model package are installed, else from the
built-in hashing encoder (no download). With ``--data DIR`` it runs on a real dataset in the
atomic format, e.g. ../shared/data/amazon2018-scientific (published codes when DIR has a faiss
index, else codes fitted on the texts).
"""
from __future__ import annotations

import time
from pathlib import Path


def run(args) -> int:
    import torch

    from .. import synthetic
    from ..data import load_atomic
    from ..train import Trainer, load_config
    from ..train.config import parse_sets
    from ..train.items import resolve_encoder
    from ..train.recommend import add_text_items, recommend

    t_start = time.perf_counter()
    out = Path(args.out)
    if args.data:
        data_dir = Path(args.data)
        codes = "published" if list(data_dir.glob("*.index")) and args.codes == "auto" else (
            "opq" if args.codes == "auto" else args.codes)
    else:
        data_dir = out / "data"
        print(f"[1/5] generating the embedded default dataset (synthetic lab-supplies shop, seed {args.seed}) "
              f"-> {data_dir}")
        synthetic.write_atomic(data_dir, num_items=args.items, num_users=args.users, seed=args.seed)
        codes = "opq" if args.codes == "auto" else args.codes
    ds = load_atomic(data_dir)
    st = ds.stats()
    print(f"      {ds.name}: {st['items']} items, {st['users']} users, {st['interactions']} interactions, "
          f"{st['train_examples']} training examples")
    encoder = resolve_encoder(args.encoder)
    print(f"[2/5] item text -> vectors ({encoder}) -> codes ({codes})")
    over = {"data": str(data_dir), "model": "vqrec", "codes": codes, "text_encoder": encoder, "out": str(out / "run"),
            "epochs": args.epochs, "patience": args.patience, "seed": args.seed, "threads": args.threads,
            "progress": not args.no_progress}
    over.update(parse_sets(args.set))
    cfg = load_config(None, over)
    t0 = time.perf_counter()
    trainer = Trainer(cfg, ds)
    print(f"      codes ready in {time.perf_counter() - t0:.1f}s: {tuple(trainer.model.codes.item_codes.shape)} uint8")
    print(f"[3/5] training VQ-Rec (up to {cfg.epochs} epochs, early stopping on valid {cfg.valid_metric})")
    res = trainer.fit(log=lambda s: print("      " + s))
    t = res["test"]
    print(f"[4/5] test (best epoch {res['best_epoch']}): Recall@10 {t['recall@10']:.4f}  NDCG@10 {t['ndcg@10']:.4f}  "
          f"Recall@50 {t['recall@50']:.4f}  NDCG@50 {t['ndcg@50']:.4f}")
    model = trainer.model.eval()
    hist = ds.test.history(0).tolist()
    print("[5/5] recommendations for the first test user, whose history ends with:")
    for i in hist[-3:]:
        print(f"      - {ds.item_text[i][:90]}")
    names, texts = list(ds.item_raw_ids), list(ds.item_text)
    if cfg.codes == "opq":  # a new item, known only by its text, coded by the saved quantizer
        new_text = ds.item_text[hist[-1]].replace(".", " (new edition).", 1)
        add_text_items(model, Path(cfg.out), [new_text])
        names.append("[new item]")
        texts.append(new_text)
    scores, ids = recommend(model, [hist], args.k)
    for r, (s, i) in enumerate(zip(scores[0].tolist(), ids[0].tolist()), start=1):
        print(f"      {r:2d}. {names[i]:<12} {s:7.3f}  {texts[i][:80]}")
    print(f"done in {time.perf_counter() - t_start:.0f}s; run folder {cfg.out} (metrics.jsonl, curves.png, best.pt, "
          f"results.json). Next: vqrec-fast recommend {cfg.out} --history '...'")
    return 0


def register(sub) -> None:
    p = sub.add_parser("quickstart", help="text -> codes -> train -> evaluate -> recommend on an embedded dataset")
    p.add_argument("--data", help="a real dataset directory instead of the embedded synthetic one")
    p.add_argument("--out", default="runs/quickstart", help="output folder")
    p.add_argument("--encoder", default="auto", choices=["auto", "minilm", "hash"], help="item text encoder")
    p.add_argument("--codes", default="auto", help="auto | published | opq | random")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--patience", type=int, default=5)
    p.add_argument("--items", type=int, default=600, help="synthetic catalogue size")
    p.add_argument("--users", type=int, default=1500, help="synthetic users")
    p.add_argument("--seed", type=int, default=2023)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("-k", type=int, default=10)
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a training config key")
    p.set_defaults(func=run)
