"""``vqrec-fast info``: build and runtime facts (SIMD level, threads, native parts)."""
from __future__ import annotations

import platform


def run(args) -> int:
    import torch

    import vqrec_fast as vf

    print(f"vqrec_fast {vf.__version__}  torch {torch.__version__}  python {platform.python_version()}")
    print(f"native CPU kernels: {'yes' if vf.has_native() else 'no (reference fallback)'}")
    print(f"SIMD level: {vf.simd_level()} (detected {vf.detected_simd_level()}; "
          f"available {', '.join(vf.available_simd_levels()) or 'none'}; override with VQREC_FAST_SIMD)")
    print(f"threads: {torch.get_num_threads()} (torch.set_num_threads / OMP_NUM_THREADS)")
    from vqrec_fast.ops.score_topk import quantized_scan

    print(f"ADC top-k scan over 1M items (mode='quantized'): 1 query: {quantized_scan(1, 10**6)}, "
          f"256 queries: {quantized_scan(256, 10**6)}")
    cache = vf.output_cache_info()
    print(f"output cache: up to {cache['limit_bytes'] / 2**20:.0f} MiB of freed outputs kept for reuse "
          "(VQREC_FAST_OUTPUT_CACHE_MB / vqrec_fast.set_output_cache_limit)")
    return 0


def register(sub) -> None:
    p = sub.add_parser("info", help="show build and runtime information")
    p.set_defaults(func=run)
