"""Cross-domain transfer: code-embedding alignment and pre-training negatives."""
from .alignment import PermutationAlignment
from .negatives import semi_synthetic_codes
from .sinkhorn import gumbel_sinkhorn, hard_permutation, is_permutation, sinkhorn, straight_through_permutation

__all__ = ["PermutationAlignment", "semi_synthetic_codes", "gumbel_sinkhorn", "hard_permutation",
           "is_permutation", "sinkhorn", "straight_through_permutation"]
