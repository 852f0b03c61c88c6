"""UniSRec / RecBole atomic files: ``X.train.inter``, ``X.valid.inter``, ``X.test.inter`` (one
row per example: space-separated history, oldest first, and the next item, as 0-based item
indices) and ``X.text`` (raw item id, text), with ``X.item2index`` mapping raw ids to indices."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Tuple

from .dataset import Examples, SeqDataset
from .errors import DataFormatError

INTER_HEADER = ("user_id:token", "item_id_list:token_seq", "item_id:token")


def _read_lines(path: Path) -> List[str]:
    if not path.exists():
        raise FileNotFoundError(f"{path}: file not found")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataFormatError(path, f"not valid UTF-8 (byte {exc.start})", line=line) from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if not lines:
        raise DataFormatError(path, "file is empty")
    return lines


def _read_index(path: Path) -> Dict[str, int]:
    out: Dict[str, int] = {}
    for ln, line in enumerate(_read_lines(path), start=1):
        parts = line.rstrip("\r").split("\t")
        if len(parts) != 2:
            raise DataFormatError(path, f"expected 2 tab-separated fields, got {len(parts)}", line=ln)
        try:
            idx = int(parts[1])
        except ValueError:
            raise DataFormatError(path, f"index {parts[1]!r} is not an integer", line=ln) from None
        if parts[0] in out:
            raise DataFormatError(path, f"duplicate id {parts[0]!r}", line=ln)
        out[parts[0]] = idx
    return out


def read_inter(path: Path, num_items: int) -> Tuple[Examples, List[str]]:
    """Reads one ``.inter`` split; returns examples over internal ids (index + 1) and user ids."""
    lines = _read_lines(path)
    header = tuple(h.strip() for h in lines[0].rstrip("\r").split("\t"))
    if header != INTER_HEADER:
        raise DataFormatError(path, f"header must be {'<TAB>'.join(INTER_HEADER)}, got {lines[0]!r}", line=1)
    histories, targets, users = [], [], []
    for ln, line in enumerate(lines[1:], start=2):
        parts = line.rstrip("\r").split("\t")
        if len(parts) != 3:
            raise DataFormatError(path, f"expected 3 tab-separated fields, got {len(parts)}", line=ln)
        try:
            hist = [int(t) + 1 for t in parts[1].split()]
        except ValueError:
            raise DataFormatError(path, f"non-integer item in {parts[1]!r}", line=ln, field="item_id_list") from None
        try:
            target = int(parts[2]) + 1
        except ValueError:
            raise DataFormatError(path, f"item {parts[2]!r} is not an integer", line=ln, field="item_id") from None
        for it in hist + [target]:
            if not 1 <= it <= num_items:
                raise DataFormatError(
                    path, f"item index {it - 1} is outside [0, {num_items})", line=ln,
                    field="item_id" if it == target else "item_id_list",
                )
        histories.append(hist)
        targets.append(target)
        users.append(parts[0])
    return Examples.from_lists(histories, targets), users


def load_atomic(directory, name: Optional[str] = None) -> SeqDataset:
    """Loads ``DIR/NAME.{train,valid,test}.inter`` + ``NAME.text`` (+ ``NAME.item2index``).

    ``name`` defaults to the prefix of the single ``*.train.inter`` file in the directory.
    """
    d = Path(directory)
    if not d.is_dir():
        raise FileNotFoundError(f"{d}: not a directory")
    if name is None:
        found = sorted(p.name[: -len(".train.inter")] for p in d.glob("*.train.inter"))
        if len(found) != 1:
            raise FileNotFoundError(f"{d}: expected exactly one *.train.inter file, found {found}")
        name = found[0]
    text_path, index_path = d / f"{name}.text", d / f"{name}.item2index"
    texts: Dict[str, str] = {}
    text_lines = _read_lines(text_path)
    for ln, line in enumerate(text_lines[1:], start=2):
        parts = line.rstrip("\r").split("\t")
        if len(parts) != 2:
            raise DataFormatError(text_path, f"expected 2 tab-separated fields, got {len(parts)}", line=ln)
        if parts[0] in texts:
            raise DataFormatError(text_path, f"duplicate item id {parts[0]!r}", line=ln)
        texts[parts[0]] = parts[1].strip()
    if index_path.exists():
        index = _read_index(index_path)
    else:  # order of the text file
        index = {raw: i for i, raw in enumerate(texts)}
    n = len(index)
    raw_ids = ["[PAD]"] + [""] * n
    for raw, i in index.items():
        if not 0 <= i < n or raw_ids[i + 1]:
            raise DataFormatError(index_path, f"index {i} of {raw!r} is duplicated or outside [0, {n})")
        raw_ids[i + 1] = raw
    missing = [r for r in raw_ids[1:] if r not in texts]
    if missing:
        raise DataFormatError(text_path, f"{len(missing)} items have no text, e.g. {missing[:3]}")
    item_text = [""] + [texts[r] for r in raw_ids[1:]]
    train, _ = read_inter(d / f"{name}.train.inter", n)
    valid, _ = read_inter(d / f"{name}.valid.inter", n)
    test, users = read_inter(d / f"{name}.test.inter", n)
    return SeqDataset(name, raw_ids, item_text, train, valid, test, user_raw_ids=users,
                      meta={"format": "atomic", "path": str(d)})
