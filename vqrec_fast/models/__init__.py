"""Sequential recommenders on packed (padding-free) histories: VQ-Rec and its baselines."""
from .base import SeqRecModel
from .packed import PackedLayout
from .sasrec import SASRec
from .text import TextSeqRec
from .vqrec import VQRec

__all__ = ["SeqRecModel", "PackedLayout", "SASRec", "TextSeqRec", "VQRec"]
