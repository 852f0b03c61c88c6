"""Training, full-ranking evaluation and configuration for the sequential recommenders."""
from .batches import build_rows, eval_rows
from .build import build_model
from .config import DOCS, TrainConfig, load_config
from .evaluate import evaluate
from .metrics import metrics_from_ranks, target_ranks
from .trainer import Trainer, load_trained

__all__ = ["DOCS", "TrainConfig", "Trainer", "build_model", "build_rows", "eval_rows", "evaluate",
           "load_config", "load_trained", "metrics_from_ranks", "target_ranks"]
