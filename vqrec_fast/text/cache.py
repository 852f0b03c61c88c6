"""On-disk embedding cache: ``DIR/<model key>/shard-*.npz``, each shard holding ``hashes``
(uint8 [n, 16], truncated SHA-256 of the UTF-8 text) and ``vectors`` (float32 [n, dim]).
A run reads every shard, encodes only texts it did not find, and adds them as one new shard
(written to a temp file and renamed, so a crash never leaves a half-written shard)."""
from __future__ import annotations

import hashlib
import os
import tempfile
import uuid
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np


def default_cache_dir() -> Path:
    """$VQREC_FAST_CACHE_DIR, else ~/.cache/vqrec_fast/text."""
    env = os.environ.get("VQREC_FAST_CACHE_DIR")
    return Path(env) / "text" if env else Path.home() / ".cache" / "vqrec_fast" / "text"


def text_hash(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()[:16]


class EmbeddingCache:
    def __init__(self, root, key: str):
        self.dir = Path(root) / key
        self._rows: Optional[Dict[bytes, np.ndarray]] = None

    def lookup(self) -> Dict[bytes, np.ndarray]:
        if self._rows is None:
            self._rows = {}
            for shard in sorted(self.dir.glob("shard-*.npz")):
                with np.load(shard) as z:
                    for h, v in zip(z["hashes"], z["vectors"]):
                        self._rows[h.tobytes()] = v
        return self._rows

    def add(self, hashes: List[bytes], vectors: np.ndarray) -> None:
        if not hashes:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        hb = np.frombuffer(b"".join(hashes), dtype=np.uint8).reshape(len(hashes), 16)
        fd, tmp = tempfile.mkstemp(dir=self.dir, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, hashes=hb, vectors=np.asarray(vectors, dtype=np.float32))
            os.replace(tmp, self.dir / f"shard-{uuid.uuid4().hex}.npz")
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        rows = self.lookup()
        for h, v in zip(hashes, vectors):
            rows[h] = v
