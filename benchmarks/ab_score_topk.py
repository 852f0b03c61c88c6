"""A/B timing of the native ADC top-k scan across builds of the extension, one process per call
set, alternating builds (a change's effect on this noisy shared machine is often smaller than
the spread between processes, so only alternation over several rounds tells them apart).

  cp vqrec_fast/_C*.so /tmp/ab/before/          # build A
  ... change, python3 setup.py build_ext --inplace ...
  cp vqrec_fast/_C*.so /tmp/ab/after/           # build B
  PYTHONPATH=. python3 benchmarks/ab_score_topk.py /tmp/ab/before/_C*.so /tmp/ab/after/_C*.so --rounds 5

Each round runs every build once, in a fresh process that loads that .so, times --reps calls of
_C.score_topk on the same random data (seed 0; CodeIndex item scales, cosine LUTs) and prints
the median; the table gives each build's per-round medians and their median. Every build must
return the same scores (checked).

Why processes: CPython hands back the module it already loaded for a second extension file of
the same module name, so timing two builds in one process times the first one twice.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCANS = {"exact": 0, "quantized": 1, "blocks": 2, "queries": 3}


def one(so: str, a, out: str) -> float:
    """Median ms of a.reps native calls with the build at `so` (run in a child process)."""
    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import vqrec_fast as vf
    from vqrec_fast.ops.score_topk import query_luts

    spec = importlib.util.spec_from_file_location("_C", so)
    C = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(C)
    torch.manual_seed(0)
    W = torch.randn(a.D, a.K, a.H)
    codes = torch.randint(0, a.K, (a.N, a.D), dtype=torch.uint8)
    q = torch.randn(a.B, a.H)
    scale = vf.CodeIndex(W, codes, metric="cosine").item_scale
    lut = query_luts(q, W, "cosine").contiguous()
    s, i = torch.empty(a.B, a.k), torch.empty(a.B, a.k, dtype=torch.int64)

    def call():
        C.score_topk(lut.data_ptr(), a.B, a.D, a.K, codes.data_ptr(), "uint8", a.N, scale.data_ptr(), 0, 0, a.k,
                     SCANS[a.scan], s.data_ptr(), i.data_ptr(), torch.get_num_threads())

    call()
    times = []
    for _ in range(a.reps):
        t = time.perf_counter()
        call()
        times.append(time.perf_counter() - t)
    torch.save(s, out)
    return statistics.median(times) * 1e3


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("builds", nargs="+", help="paths of _C*.so files to compare")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--reps", type=int, default=9, help="timed calls per process")
    p.add_argument("--B", type=int, default=256)
    p.add_argument("--N", type=float, default=1e6)
    p.add_argument("--k", type=int, default=50)
    p.add_argument("--D", type=int, default=32)
    p.add_argument("--K", type=int, default=256)
    p.add_argument("--H", type=int, default=300)
    p.add_argument("--scan", choices=sorted(SCANS), default="quantized")
    p.add_argument("--child", help=argparse.SUPPRESS)  # internal: "so,out" to time in this process
    a = p.parse_args(argv)
    a.N = int(a.N)
    if a.child:
        so, out = a.child.split(",")
        print(f"{one(so, a, out):.2f}")
        return
    for so in a.builds:
        if not os.path.isfile(so):
            raise SystemExit(f"no such build: {so}")
    args = [f"--{n}={getattr(a, n)}" for n in ("reps", "B", "N", "k", "D", "K", "H", "scan")]
    ms = {so: [] for so in a.builds}
    print(f"# B={a.B} N={a.N} k={a.k} D={a.D} K={a.K} H={a.H} scan={a.scan}; {a.rounds} rounds of {a.reps} calls")
    with tempfile.TemporaryDirectory() as tmp:
        outs = {so: os.path.join(tmp, f"{n}.pt") for n, so in enumerate(a.builds)}
        # Each build is loaded from a copy: the package itself imports vqrec_fast/_C*.so, and
        # loading that same file again would register its types twice.
        copies = {}
        for n, so in enumerate(a.builds):
            os.makedirs(os.path.join(tmp, str(n)))
            copies[so] = shutil.copy(so, os.path.join(tmp, str(n), os.path.basename(so)))
        for r in range(a.rounds):
            for so in a.builds:
                got = subprocess.run([sys.executable, __file__, *args, "--child", f"{copies[so]},{outs[so]}", so],
                                     capture_output=True, text=True)
                if got.returncode != 0:
                    raise SystemExit(f"{so} failed:\n{got.stderr}")
                ms[so].append(float(got.stdout.strip().splitlines()[-1]))
            print(f"round {r + 1}: " + "  ".join(f"{ms[so][-1]:.2f}" for so in a.builds), flush=True)
        import torch

        first = torch.load(outs[a.builds[0]])
        same = all(torch.equal(first, torch.load(outs[so])) for so in a.builds[1:])
    print("| build | per-round medians (ms) | median ms |")
    print("| --- | --- | ---: |")
    for so in a.builds:
        print(f"| {so} | {' / '.join(f'{m:.1f}' for m in ms[so])} | {statistics.median(ms[so]):.1f} |")
    print(f"same scores from every build: {same}")
    if not same:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
