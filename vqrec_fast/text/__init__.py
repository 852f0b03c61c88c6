"""Item text -> frozen PLM vectors (sentence-transformers), cached on disk.

``encode_texts(texts, model="default", ...) -> float32 [n, dim]`` and
``encode_items(dataset, ...) -> float32 [num_items + 1, dim]`` (row 0 = padding, zeros)."""
from .encode import encode_items, encode_texts
from .models import DEFAULT_MODEL

__all__ = ["encode_texts", "encode_items", "DEFAULT_MODEL"]
