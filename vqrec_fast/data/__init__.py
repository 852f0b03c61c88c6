"""Datasets: one in-memory type (``SeqDataset``) and loaders for common formats."""
from .atomic import load_atomic
from .dataset import Examples, SeqDataset
from .errors import DataFormatError

__all__ = ["Examples", "SeqDataset", "DataFormatError", "load_atomic"]
