"""Datasets: one in-memory type (``SeqDataset``) and loaders for common formats.

Internal item ids are 1..num_items, 0 is padding. Loaders: ``load_atomic`` (UniSRec/RecBole
split files), ``load_recbole`` (.inter + .item), ``load_amazon_json`` (2014-style JSON),
``load_amazon2018`` (raw 2018 ratings + metadata), ``load_interactions`` (generic tables), and
``load_dataset`` which detects the format."""
from .amazon2018 import load_amazon2018
from .amazon_json import load_amazon_json
from .atomic import load_atomic
from .dataset import Examples, SeqDataset, Sequences
from .errors import DataFormatError
from .interactions import load_interactions, load_recbole
from .load import detect_format, load_dataset

__all__ = ["Examples", "SeqDataset", "Sequences", "DataFormatError", "load_atomic", "load_recbole",
           "load_amazon_json", "load_amazon2018", "load_interactions", "load_dataset", "detect_format"]
