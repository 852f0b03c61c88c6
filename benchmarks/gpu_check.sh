#!/usr/bin/env bash
# One-shot GPU check for a lent GPU machine (issue 8): build the package with the CUDA module,
# run the GPU tests, the GPU benchmarks and the Triton tests, in under 6.5 minutes in all.
# Every step is time-boxed and the script carries on after a failure, so one run yields as much
# information as possible. Writes:
#   $OUT/gpu_results.md  device, versions, each step's exit status and every benchmark figure
#   $OUT/gpu_log.txt     the full log
#   $OUT/gpu_profile.txt kernel times per op (only with GPU_CHECK_PROFILE=1)
# Usage (repository root): OUT=/some/dir bash benchmarks/gpu_check.sh
set -x
cd "$(dirname "$0")/.." || exit 1
OUT="${OUT:-$PWD/gpu_out}"
mkdir -p "$OUT"
RES="$OUT/gpu_results.md"
LOG="$OUT/gpu_log.txt"
: > "$RES"
exec > >(tee -a "$LOG") 2>&1
TOTAL_BUDGET=${GPU_CHECK_BUDGET_S:-380}  # seconds for all steps together
START=$SECONDS

# step NAME SECONDS CMD...: runs CMD under a timeout capped by what is left of the budget.
step() {
  local name=$1 secs=$2
  shift 2
  local left=$((TOTAL_BUDGET - (SECONDS - START)))
  if ((left < 10)); then
    echo "- $name: SKIPPED (budget spent)" >> "$RES"
    return 0
  fi
  ((secs > left)) && secs=$left
  echo "=== step $name (limit ${secs}s): $*"
  local t0=$SECONDS
  timeout -k 5 "$secs" "$@"
  local rc=$?
  local msg="rc=$rc"
  ((rc == 124 || rc == 137)) && msg="TIMED OUT after ${secs}s"
  echo "=== step $name: $msg in $((SECONDS - t0))s"
  echo "- step $name: $msg in $((SECONDS - t0))s" >> "$RES"
  return 0
}

{
  echo "# vqrec_fast GPU check ($(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'))"
  echo
  echo '```'
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1
  nvcc --version 2>&1 | tail -1
  python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)' 2>&1
  python3 -c 'import triton; print("triton", triton.__version__)' 2>&1
  echo "cpu: $(nproc) cores"
  echo '```'
} >> "$RES"

export VQREC_FAST_CUDA=ON VQREC_FAST_CUDA_ARCHS=90
step build 110 python3 setup.py -q build_ext --inplace
if ! python3 -c 'import vqrec_fast._C_cuda' 2>/dev/null; then
  echo "- CUDA module missing after the build; rebuilding the CPU module only (Triton still runs)" >> "$RES"
  step build_cpu_only 60 env VQREC_FAST_CUDA=OFF python3 setup.py -q build_ext --inplace
fi
python3 -c 'import vqrec_fast.cuda as c; print("gpu backend:", c.gpu_backend(), "has kernels:", c.has_cuda_kernels())' >> "$RES" 2>&1

# GPU tests (marked gpu): CUDA kernels vs the reference, CUDA vs Triton cross-checks.
# Then the public ops on CUDA tensors (score_topk's scan + exact re-rank, the fused loss's kernels)
# for every GPU backend, against the CPU results.
step gpu_tests 110 python3 -m pytest -q -m gpu -rfEs -p no:cacheprovider tests/test_cuda_adc_candidates.py \
  tests/test_cuda_code_bag.py tests/test_cuda_adc_topk.py tests/test_cuda_softmax_ce.py tests/test_score_topk_gpu_path.py \
  tests/test_softmax_ce_gpu_path.py
echo '## Benchmarks' >> "$RES"
step bench 170 python3 benchmarks/bench_gpu.py --out "$RES" --only adc,bag,ce
# Triton kernels compiled for the GPU (CI runs them under the interpreter).
step triton_tests 40 python3 -m pytest -q -rfE -p no:cacheprovider tests/test_triton_code_bag.py \
  tests/test_triton_adc_topk.py tests/test_triton_softmax_ce.py tests/test_cuda_seq_dedup.py
# Optional kernel-level profile (GPU_CHECK_PROFILE=1): where each op's time goes.
if [[ "${GPU_CHECK_PROFILE:-0}" == 1 ]]; then
  step profile 90 bash -c "python3 benchmarks/profile_gpu.py > '$OUT/gpu_profile.txt' 2>&1"
fi
echo "- total: $((SECONDS - START))s" >> "$RES"
grep -E "passed|failed|error" "$LOG" | tail -5 >> "$RES"
exit 0
