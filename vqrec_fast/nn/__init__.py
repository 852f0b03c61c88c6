"""Neural-network layers built on the fused kernels."""
from .code_embedding import CodeEmbedding

__all__ = ["CodeEmbedding"]
