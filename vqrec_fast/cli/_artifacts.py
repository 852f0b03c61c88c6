"""Run directories for CLI artifacts: every file is written to a temp file in the same directory
and renamed (so readers never see half a file), and ``manifest.json`` records, per artifact, the
command, its options, the SHA-256 of its input files and the library versions."""
from __future__ import annotations

import hashlib
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, Iterable


def atomic_write(path: Path, write: Callable[[object], None], mode: str = "wb") -> None:
    """Calls write(file) on a temp file next to ``path``, then renames it onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def input_hashes(paths: Iterable) -> Dict[str, str]:
    """SHA-256 of each input file; a directory contributes each of its files."""
    out: Dict[str, str] = {}
    for p in map(Path, paths):
        files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
        for f in files:
            out[str(f)] = file_sha256(f)
    return out


def versions() -> Dict[str, str]:
    import numpy
    import torch

    import vqrec_fast

    out = {"python": platform.python_version(), "vqrec_fast": vqrec_fast.__version__,
           "torch": torch.__version__, "numpy": numpy.__version__}
    for mod in ("faiss", "sentence_transformers", "transformers"):
        try:
            out[mod] = __import__(mod).__version__
        except Exception:  # optional dependency absent or without a version
            pass
    return out


def record(run_dir: Path, artifact: str, command: str, options: Dict[str, object], inputs: Iterable) -> None:
    """Adds (or replaces) the entry for ``artifact`` in RUN_DIR/manifest.json."""
    run_dir = Path(run_dir)
    mpath = run_dir / "manifest.json"
    manifest = json.loads(mpath.read_text()) if mpath.exists() else {"artifacts": {}}
    manifest["artifacts"][artifact] = {
        "command": command, "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in options.items()},
        "inputs": input_hashes(inputs), "versions": versions(),
        "sha256": file_sha256(run_dir / artifact), "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    atomic_write(mpath, lambda f: f.write(json.dumps(manifest, indent=2, sort_keys=True)), mode="w")
