"""Top-k recommendation for given histories, optionally over new items described only by text
(VQ-Rec's inductive setting: a new item's text -> vector -> codes with the run's saved
quantizer -> a code-composed vector; no retraining)."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import torch

from ..models import PackedLayout, VQRec
from . import checkpoint
from .items import encode_texts
from .quantizer import encode


def add_text_items(model: VQRec, run_dir: Path, texts: Sequence[str]) -> List[int]:
    """Appends items coded from raw texts; returns their new internal ids."""
    if not isinstance(model, VQRec):
        raise ValueError("new items from text need a VQ-Rec model (codes), not " + type(model).__name__)
    qpath = Path(run_dir) / "quantizer.pt"
    if not qpath.is_file():
        raise FileNotFoundError(f"{qpath}: this run has no text quantizer (train with codes=opq to code new texts)")
    q = checkpoint.load(qpath)
    new = encode(encode_texts(list(texts), q["encoder"]), q)
    first = model.num_items + 1
    model.set_item_codes(torch.cat([model.codes.item_codes, new.to(model.codes.item_codes.device)]))
    return list(range(first, first + len(texts)))


@torch.no_grad()
def recommend(model, histories: Sequence[Sequence[int]], k: int = 10,
              exclude_history: bool = False) -> Tuple[torch.Tensor, torch.Tensor]:
    """histories: lists of internal item ids (oldest first, each >= 1 item). Returns (scores [B, k],
    ids [B, k]). ``exclude_history`` drops items already in the history (evaluation keeps them)."""
    model.eval()
    for i, h in enumerate(histories):
        if len(h) == 0:
            raise ValueError(f"history {i} is empty")
        bad = [x for x in h if not 1 <= int(x) <= model.num_items]
        if bad:
            raise ValueError(f"history {i}: item id {bad[0]} is outside 1..{model.num_items}")
    hs = [list(h)[-model.max_len :] for h in histories]
    lens = torch.tensor([len(h) for h in hs])
    offsets = torch.zeros(len(hs) + 1, dtype=torch.int64)
    torch.cumsum(lens, 0, out=offsets[1:])
    tokens = torch.tensor([x for h in hs for x in h], dtype=torch.int64)
    q = model.encode(tokens, PackedLayout.from_offsets(offsets), last_only=True)
    extra = max(len(h) for h in hs) if exclude_history else 0
    scores, ids = model.topk(q, min(k + extra, model.num_items))
    if not exclude_history:
        return scores[:, :k], ids[:, :k]
    out_s, out_i = [], []
    for r, h in enumerate(hs):
        keep = ~torch.isin(ids[r], torch.tensor(h))
        out_s.append(scores[r][keep][:k])
        out_i.append(ids[r][keep][:k])
    return torch.stack(out_s), torch.stack(out_i)


def parse_history(text: str, index: dict, internal: bool, num_items: Optional[int] = None) -> List[int]:
    """'A B C' (raw ids from NAME.item2index, or internal ids with ``internal``) -> internal ids."""
    out = []
    for tok in text.replace(",", " ").split():
        if internal:
            try:
                out.append(int(tok))
            except ValueError:
                raise ValueError(f"history item {tok!r} is not an integer id") from None
        else:
            if tok not in index:
                raise ValueError(f"history item {tok!r} is not a known raw item id")
            out.append(index[tok])
    if not out:
        raise ValueError("empty history")
    return out
