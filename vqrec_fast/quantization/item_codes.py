"""``ItemCodes``: the discrete item codes VQ-Rec embeds, plus the fitted map that codes new items."""
from __future__ import annotations

import io
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Optional

import numpy as np
import torch

from .quantizers import QUANTIZERS

FORMAT_VERSION = 1


@dataclass
class ItemCodes:
    """codes: torch.uint8 [num_items + 1, D]; row 0 is the padding item (zeros).

    quantizer: the fitted map (``encode(float32 [n, dim]) -> uint8 [n, D]``), or None when the
      codes were imported without one.
    method: "opq" | "pq" | "rq" | "random" | "imported"; bits: log2 of the codebook size K.
    info: provenance (training item count, source index, rule for items without a code, ...).
    """

    codes: torch.Tensor
    quantizer: Optional[object]
    method: str
    bits: int = 8
    info: Dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.codes, torch.Tensor) or self.codes.dtype != torch.uint8 or self.codes.dim() != 2:
            raise TypeError("codes must be a torch.uint8 tensor [num_items + 1, D]")

    @property
    def num_items(self) -> int:
        return int(self.codes.shape[0]) - 1

    @property
    def num_subspaces(self) -> int:
        return int(self.codes.shape[1])

    @property
    def codebook_size(self) -> int:
        return 1 << self.bits

    def encode(self, vectors) -> torch.Tensor:
        """Codes for new items' vectors (float32 [n, dim]) without refitting: uint8 [n, D]."""
        if self.quantizer is None:
            raise ValueError(f"these {self.method} codes carry no fitted quantizer, so new items cannot be coded")
        return torch.from_numpy(np.ascontiguousarray(self.quantizer.encode(vectors)))

    def save(self, path) -> None:
        """One .npz file (written to a temp file, then renamed)."""
        path = Path(path)
        arrays = {"codes": self.codes.numpy()}
        kind = None
        if self.quantizer is not None:
            kind = next(k for k, c in QUANTIZERS.items() if isinstance(self.quantizer, c))
            arrays.update({f"q_{k}": v for k, v in self.quantizer.state().items()})
        header = {"format_version": FORMAT_VERSION, "method": self.method, "bits": self.bits,
                  "quantizer": kind, "info": self.info}
        arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(buf.getvalue())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path) -> "ItemCodes":
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"{path}: file not found")
        try:
            z = np.load(path, allow_pickle=False)
            header = json.loads(bytes(z["header"]).decode())
        except (ValueError, KeyError, OSError) as exc:
            raise ValueError(f"{path}: not an ItemCodes file ({exc})") from None
        if header.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{path}: unsupported ItemCodes format {header.get('format_version')}")
        q = None
        if header["quantizer"] is not None:
            st = {k[2:]: z[k] for k in z.files if k.startswith("q_")}
            q = QUANTIZERS[header["quantizer"]].from_state(st)
        return cls(torch.from_numpy(z["codes"].copy()), q, header["method"], header["bits"], header["info"])
