"""Markdown table and PNG plots of a transfer study (``study.json`` -> ``study.md``, PNGs)."""
from __future__ import annotations

from pathlib import Path
from typing import Dict

LABELS = {
    "scratch": "VQ-Rec from scratch (fresh OPQ codes)",
    "transfer": "VQ-Rec pre-trained + fine-tuned (learned alignment)",
    "align_random": "  ablation: random permutation (paper's code)",
    "align_none": "  ablation: no alignment",
    "no_semi_synthetic": "  ablation: no semi-synthetic negatives",
    "random_codes": "  ablation: random target codes",
    "pretrain_codes": "  ablation: pre-training code space reused",
    "text_scratch": "text baseline SASRec(T) from scratch",
    "unisrec_scratch": "text baseline UniSRec-style (whitening + MoE) from scratch",
    "unisrec_transfer": "text baseline UniSRec-style pre-trained + fine-tuned",
}
METRICS = ("recall@10", "ndcg@10", "recall@50", "ndcg@50")


def _fmt(x: float) -> str:
    return f"{x:.4f}"


def table(result: Dict) -> str:
    from .study import PAPER_ROW

    runs = result["runs"]
    lines = ["| model | R@10 | N@10 | R@50 | N@50 | best epoch | train s | codes moved by alignment |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, label in LABELS.items():
        if name not in runs:
            continue
        r = runs[name]
        lines.append(f"| {label} | " + " | ".join(_fmt(r["test"][m]) for m in METRICS)
                     + f" | {r['best_epoch']} | {r['train_seconds_total']:.0f} | "
                     + (f"{r['permutation_changed']:.1%}" if r.get("options", {}).get("pretrained") and r["options"].get("model") != "unisrec"
                        else "")
                     + " |")
    lines.append("| paper: VQ-Rec pre-trained on 5 Amazon domains (14M interactions) | "
                 + " | ".join(f"{PAPER_ROW[m]:.4f}" for m in METRICS) + " | | | |")
    return "\n".join(lines)


def analysis_tables(result: Dict) -> str:
    an = result["analyses"]
    lines = ["| model | sim(top-10, last item) | sim(true next, last item) | over-emphasis |", "| --- | --- | --- | --- |"]
    for name in LABELS:
        if name in an:
            o = an[name]["overemphasis"]
            lines.append(f"| {name} | {_fmt(o['rec_sim'])} | {_fmt(o['target_sim'])} | {o['overemphasis']:+.4f} |")
    groups = list(next(iter(an.values()))["cold_start"])
    lines += ["", "| model | " + " | ".join(f"N@10 pop {g} ({next(iter(an.values()))['cold_start'][g]['users']} users)"
                                             for g in groups) + " |",
              "| --- |" + " --- |" * len(groups)]
    for name in LABELS:
        if name in an:
            cs = an[name]["cold_start"]
            lines.append(f"| {name} | " + " | ".join(_fmt(cs[g]["ndcg@10"]) if cs[g]["users"] else "–" for g in groups)
                         + " |")
    return "\n".join(lines)


def fraction_table(result: Dict) -> str:
    fr = result["config"]["fractions"]
    runs = result["runs"]
    lines = ["| train fraction | scratch N@10 | transfer N@10 | scratch R@10 | transfer R@10 |", "| --- | --- | --- | --- | --- |"]
    for f in list(fr) + [1.0]:
        s = runs["scratch" if f == 1.0 else f"scratch_frac{f}"]["test"]
        t = runs["transfer" if f == 1.0 else f"transfer_frac{f}"]["test"]
        lines.append(f"| {f} | {_fmt(s['ndcg@10'])} | {_fmt(t['ndcg@10'])} | {_fmt(s['recall@10'])} | {_fmt(t['recall@10'])} |")
    return "\n".join(lines)


def plots(result: Dict, out: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fr = list(result["config"]["fractions"]) + [1.0]
    runs = result["runs"]
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    for kind in ("scratch", "transfer"):
        ys = [runs[kind if f == 1.0 else f"{kind}_frac{f}"]["test"]["ndcg@10"] for f in fr]
        ax.plot(fr, ys, marker="o", label=kind)
    ax.set_xlabel("fraction of target training data")
    ax.set_ylabel("test NDCG@10")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "fraction_curve.png", dpi=110)
    plt.close(fig)
    an = result["analyses"]
    groups = list(next(iter(an.values()))["cold_start"])
    fig, ax = plt.subplots(figsize=(6, 3.2))
    names = [n for n in LABELS if n in an]
    w = 0.8 / len(names)
    for i, n in enumerate(names):
        ax.bar([g + i * w for g in range(len(groups))], [an[n]["cold_start"][g]["ndcg@10"] for g in groups], w, label=n)
    ax.set_xticks([g + 0.4 - w / 2 for g in range(len(groups))], [f"pop {g}" for g in groups])
    ax.set_ylabel("test NDCG@10")
    ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(out / "cold_start.png", dpi=110)
    plt.close(fig)


def write_report(result: Dict, out: Path) -> None:
    out = Path(out)
    cfg = result["config"]
    pre = result["pretrain"]
    text = [
        f"# Transfer study: {' + '.join(Path(s).name for s in cfg['sources'])} -> {Path(cfg['target']).name}", "",
        f"hidden={cfg['hidden']} inner={cfg['inner']} pretrain_epochs={cfg['pretrain_epochs']} "
        f"epochs<={cfg['epochs']} patience={cfg['patience']} align_epochs={cfg['align_epochs']} seed={cfg['seed']}; "
        f"total {result['seconds']:.0f}s", "",
        "pre-training loss by epoch: " + "; ".join(
            f"{n}: " + ", ".join(f"{h['loss']:.3f}" for h in p["history"]) for n, p in pre.items()), "",
        table(result), "", "## Text over-emphasis and cold start (test users)", "", analysis_tables(result), "",
        "## Training-data fraction", "", fraction_table(result), "",
    ]
    (out / "study.md").write_text("\n".join(text))
    plots(result, out)
