"""Item codes: vectors -> D digits of ``bits`` bits (VQ-Rec's OPQ codes and baselines).

``fit_codes(vectors, train_item_ids, method="opq"|"pq"|"rq"|"random", num_subspaces=32, bits=8,
seed=0) -> ItemCodes``; ``import_faiss_index(path, dataset) -> ItemCodes``;
``code_report(codes) -> dict``. ``ItemCodes.codes`` is torch.uint8 [num_items + 1, D], row 0 the
padding item."""
from .faiss_import import import_faiss_index
from .fit import METHODS, fit_codes
from .item_codes import ItemCodes
from .report import code_report

__all__ = ["ItemCodes", "fit_codes", "import_faiss_index", "code_report", "METHODS"]
