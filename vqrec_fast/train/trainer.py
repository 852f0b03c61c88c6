"""The training loop shared by VQ-Rec and the baselines.

Full-softmax cross-entropy over all real items, Adam, batches of ~batch_size examples, one
validation pass per epoch (Recall/NDCG@10,50 full ranking), early stopping on valid_metric
with ``patience``, the best checkpoint kept and tested at the end.

Run folder (cfg.out): config.json, metrics.jsonl (one JSON object per epoch), last.pt (model,
optimizer, RNG states, loop state; written atomically after every epoch), best.pt (best model),
results.json (valid + test of the best checkpoint), curves.png. ``resume=True`` restores
last.pt and continues with the next epoch; the RNG states make the continuation identical to
an uninterrupted run.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Dict, Optional

import torch

from ..data import SeqDataset
from ..models import PackedLayout, SeqRecModel
from . import checkpoint
from .batches import build_rows, iter_batches
from .build import build_model, model_from_state
from .config import TrainConfig
from .evaluate import evaluate
from .plot import plot_curves


def _progress(total: int, enabled: bool, desc: str):
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=desc, unit="ex", leave=False, dynamic_ncols=True)


class Trainer:
    def __init__(self, cfg: TrainConfig, ds: SeqDataset, model: Optional[SeqRecModel] = None):
        self.cfg, self.ds = cfg.validate(), ds
        self.out = Path(cfg.out)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.model = model if model is not None else build_model(cfg, ds, cache_dir=self.out.parent / "cache")
        self.rows = build_rows(ds.train, cfg.max_len, cfg.train_layout)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.shuffle = torch.Generator().manual_seed(cfg.seed)
        torch.manual_seed(cfg.seed)  # dropout stream
        self.epoch = 0  # completed epochs
        self.best: Optional[float] = None
        self.best_epoch = 0
        self.bad = 0
        self.history = []

    # ------------------------------------------------------------------ state
    def _state(self) -> Dict:
        return {
            "config": self.cfg.to_dict(), "model": self.model.state_dict(), "optimizer": self.opt.state_dict(),
            "torch_rng": torch.get_rng_state(), "shuffle_rng": self.shuffle.get_state(), "epoch": self.epoch,
            "best": self.best, "best_epoch": self.best_epoch, "bad": self.bad, "history": self.history,
            "num_items": self.ds.num_items,
        }

    def resume(self) -> None:
        st = checkpoint.load(self.out / "last.pt")
        if st.get("num_items") != self.ds.num_items:
            raise ValueError(f"{self.out / 'last.pt'}: checkpoint has {st.get('num_items')} items, "
                             f"dataset has {self.ds.num_items}")
        self.model.load_state_dict(st["model"])
        self.opt.load_state_dict(st["optimizer"])
        torch.set_rng_state(st["torch_rng"])
        self.shuffle.set_state(st["shuffle_rng"])
        self.epoch, self.best, self.best_epoch = st["epoch"], st["best"], st["best_epoch"]
        self.bad, self.history = st["bad"], st["history"]

    def finished(self) -> bool:
        return self.epoch >= self.cfg.epochs or self.bad >= self.cfg.patience

    # ------------------------------------------------------------------ loop
    def train_epoch(self) -> Dict[str, float]:
        cfg, model = self.cfg, self.model
        model.train()
        bar = _progress(self.rows.num_examples, cfg.progress, f"epoch {self.epoch + 1}")
        t0 = time.perf_counter()
        total, seen = 0.0, 0
        for b in iter_batches(self.rows, cfg.batch_size, self.shuffle):
            layout = PackedLayout.from_offsets(b.offsets)
            out = model.encode(b.tokens, layout)
            loss = model.loss(out[b.target_pos], b.targets)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            n = int(b.targets.numel())
            total += float(loss.detach()) * n
            seen += n
            if bar is not None:
                bar.update(n)
                bar.set_postfix(loss=f"{float(loss):.4f}", ex_s=f"{seen / (time.perf_counter() - t0):.0f}")
        if bar is not None:
            bar.close()
        dt = time.perf_counter() - t0
        return {"loss": total / max(seen, 1), "train_seconds": dt, "examples_per_s": seen / dt}

    def evaluate(self, split: str) -> Dict[str, float]:
        ex = getattr(self.ds, split)
        return evaluate(self.model, ex, (10, 50), self.cfg.max_len, self.cfg.eval_batch_size, split)

    def fit(self, resume: bool = False, log=print) -> Dict:
        cfg = self.cfg
        self.out.mkdir(parents=True, exist_ok=True)
        if resume:
            self.resume()
            log(f"resumed from {self.out / 'last.pt'} after epoch {self.epoch}")
        (self.out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=1) + "\n")
        if getattr(self.model, "quantizer", None) is not None:
            checkpoint.save_atomic(self.model.quantizer, self.out / "quantizer.pt")
        metrics_path = self.out / "metrics.jsonl"
        if not resume and metrics_path.exists():
            metrics_path.unlink()
        while not self.finished():
            rec = self.train_epoch()
            self.epoch += 1
            valid = self.evaluate("valid")
            score = valid[cfg.valid_metric]
            improved = self.best is None or score > self.best
            if improved:
                self.best, self.best_epoch, self.bad = score, self.epoch, 0
                checkpoint.save_atomic({"config": cfg.to_dict(), "model": self.model.state_dict(),
                                        "epoch": self.epoch, "num_items": self.ds.num_items}, self.out / "best.pt")
            else:
                self.bad += 1
            entry = {"epoch": self.epoch, **rec, "valid": valid, "best_epoch": self.best_epoch}
            self.history.append(entry)
            with open(metrics_path, "a") as f:
                f.write(json.dumps(entry) + "\n")
            checkpoint.save_atomic(self._state(), self.out / "last.pt")
            log(f"epoch {self.epoch:3d}  loss {rec['loss']:.4f}  train {rec['train_seconds']:.1f}s "
                f"({rec['examples_per_s']:.0f} ex/s)  valid R@10 {valid['recall@10']:.4f} N@10 {valid['ndcg@10']:.4f} "
                f"R@50 {valid['recall@50']:.4f} N@50 {valid['ndcg@50']:.4f}  eval {valid['eval_seconds']:.2f}s"
                f"{'  *' if improved else ''}")
        return self.finish(log)

    def finish(self, log=print) -> Dict:
        best = checkpoint.load(self.out / "best.pt")
        self.model.load_state_dict(best["model"])
        valid, test = self.evaluate("valid"), self.evaluate("test")
        res = {"config": self.cfg.to_dict(), "best_epoch": best["epoch"], "epochs_run": self.epoch,
               "valid": valid, "test": test,
               "train_seconds_total": sum(h["train_seconds"] for h in self.history),
               "eval_seconds_total": sum(h["valid"]["eval_seconds"] for h in self.history)}
        (self.out / "results.json").write_text(json.dumps(res, indent=1) + "\n")
        if self.cfg.plot and self.history:
            plot_curves(self.history, self.out / "curves.png", self.cfg.valid_metric)
        log(f"best epoch {best['epoch']}: test R@10 {test['recall@10']:.4f} N@10 {test['ndcg@10']:.4f} "
            f"R@50 {test['recall@50']:.4f} N@50 {test['ndcg@50']:.4f}  (test eval {test['eval_seconds']:.2f}s)")
        return res


def load_trained(path, num_items: Optional[int] = None) -> SeqRecModel:
    """A model from best.pt / last.pt (or a run folder holding best.pt)."""
    p = Path(path)
    if p.is_dir():
        p = p / "best.pt"
    st = checkpoint.load(p)
    for key in ("config", "model", "num_items"):
        if key not in st:
            raise ValueError(f"{p}: not a vqrec-fast checkpoint (missing {key!r})")
    cfg = TrainConfig(**st["config"]).validate()
    if num_items is not None and num_items != st["num_items"]:
        raise ValueError(f"{p}: checkpoint has {st['num_items']} items, dataset has {num_items}")
    model = model_from_state(cfg, st["model"], st["num_items"])
    model.eval()
    return model
