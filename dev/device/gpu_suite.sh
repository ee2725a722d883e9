#!/usr/bin/env bash
# The GPU test suite and the throughput benchmark, batched for one device call.
# Usage: dev/device/gpu_suite.sh [tests|bench|all]
set -u
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 KERNELSMITH_HOME=/tmp/ks
mkdir -p /tmp/ks && chmod 755 /tmp/ks
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
what=${1:-all}
if [[ $what == tests || $what == all ]]; then
  python3 -m pytest -q -s -p no:cacheprovider tests/gpu 2>&1 | tee "$OUT/gpu_tests.log" \
    | grep -E "VERDICT|passed|failed|^FAILED|^E  " | tail -150
fi
if [[ $what == bench || $what == all ]]; then
  python3 benchmarks/eval_throughput.py --soak "${SOAK:-200}" --json "$OUT/bench.json" 2>&1 | tee "$OUT/bench.log" | tail -60
fi
