"""The mission's question in one command: VQ-Rec (published / own OPQ / random codes), SASRec
with item ids and the text baseline, trained by the same loop on the same data and evaluated
by the same protocol; writes OUT/results.md and OUT/results.json."""
from __future__ import annotations

import json
from pathlib import Path
from typing import List

from ..data import load_atomic
from .config import TrainConfig
from .trainer import Trainer

VARIANTS = {
    "vqrec-published": dict(model="vqrec", codes="published"),
    "vqrec-opq": dict(model="vqrec", codes="opq"),
    "vqrec-random": dict(model="vqrec", codes="random"),
    "sasrec": dict(model="sasrec"),
    "text": dict(model="text"),
}
COLS = ("recall@10", "ndcg@10", "recall@50", "ndcg@50")


def table(rows: List[dict]) -> str:
    lines = ["| model | R@10 | N@10 | R@50 | N@50 | best epoch | train s/epoch | test eval s |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        t = r["test"]
        per = r["train_seconds_total"] / max(r["epochs_run"], 1)
        lines.append(f"| {r['name']} | " + " | ".join(f"{t[c]:.4f}" for c in COLS)
                     + f" | {r['best_epoch']} | {per:.1f} | {t['eval_seconds']:.2f} |")
    return "\n".join(lines) + "\n"


def run_baselines(data: str, out: str, names: List[str], base: TrainConfig, resume: bool = False) -> List[dict]:
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown model variant(s) {unknown}; choose from {sorted(VARIANTS)}")
    ds = load_atomic(data)
    root = Path(out or base.out)
    rows = []
    for name in names:
        cfg = base.replace(data=data, out=str(root / name), **VARIANTS[name])
        print(f"== {name} ({cfg.out})")
        done = Path(cfg.out) / "results.json"
        if resume and done.exists():
            res = json.loads(done.read_text())
        else:
            res = Trainer(cfg, ds).fit(resume=resume and (Path(cfg.out) / "last.pt").exists())
        res["name"] = name
        rows.append(res)
        (root / "results.md").write_text(table(rows))
        (root / "results.json").write_text(json.dumps(rows, indent=1) + "\n")
    print(table(rows), end="")
    return rows
