#!/usr/bin/env bash
# The GPU verification, one step per device call (each fits the 10-minute limit).
# Before the first call, here: bash scripts/fetch_device_wheels.sh   (then carry .whl)
# Usage on the device: bash scripts/device_steps.sh STEP
#   fixtures  every fixture solution through `bench --generations` (all visible GPUs), checked
#             against the manifest's verdicts            [issues 2, 4; use nvidia-h200-x2 for 2 GPUs]
#   hostile   the adversarial corpus, each followed by an honest candidate   [issues 2, 5]
#   timing    timing reproducibility tests                                    [issue 2]
#   bench     benchmarks/eval_throughput.py (SOAK=200)                        [issue 2]
#   optimize  the whole optimize loop with scripted real kernels              [issue 3]
#   tools     Nsight Compute profile and compute-sanitizer through the evaluator [issues 3, 5]
set -u
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 KERNELSMITH_HOME=/tmp/ks
mkdir -p /tmp/ks && chmod 755 /tmp/ks
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
case "${1:-}" in
  fixtures)
    python3 scripts/fixture_generations.py write /tmp/fx.jsonl
    KERNELSMITH_COMPILE_BASELINE=0 KERNELSMITH_MAX_TIMING_SECONDS=1 python3 -m kernelsmith.cli bench --generations /tmp/fx.jsonl --suite tasks --label fixtures \
      --db "sqlite:///$OUT/fixtures.db" 2>&1 | tee "$OUT/fixtures.log" | tail -30
    run=$(python3 -c "from kernelsmith.store.runs import RunStore; print(RunStore('sqlite:///$OUT/fixtures.db').list_runs()[0].id)")
    python3 scripts/fixture_generations.py check /tmp/fx.jsonl "$run" --db "sqlite:///$OUT/fixtures.db" | tee "$OUT/fixtures_check.txt" | tail -40 ;;
  hostile)
    python3 -m pytest -q -s -p no:cacheprovider tests/gpu/test_hostile_gpu.py 2>&1 | tee "$OUT/hostile.log" \
      | grep -E "VERDICT|passed|failed|^FAILED" | tail -100 ;;
  timing)
    python3 -m pytest -q -s -p no:cacheprovider tests/gpu/test_timing_gpu.py 2>&1 | tee "$OUT/timing.log" | tail -30 ;;
  bench)
    python3 benchmarks/eval_throughput.py --soak "${SOAK:-200}" --json "$OUT/bench.json" 2>&1 | tee "$OUT/bench.log" | tail -60 ;;
  optimize)
    python3 scripts/device_optimize.py "$OUT/optimize" 2>&1 | tee "$OUT/optimize.log" | tail -30 ;;
  tools)
    python3 scripts/device_tools.py 2>&1 | tee "$OUT/tools.log" | tail -40 ;;
  *) echo "usage: $0 fixtures|hostile|timing|bench|optimize|tools"; exit 2 ;;
esac
