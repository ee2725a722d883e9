#!/usr/bin/env bash
# The GPU verification, batched for device calls (10-minute limit each): steps run in the
# order given, each under its own time limit, so one slow step cannot cost the others.
# Before the first call, here: bash dev/device/fetch_wheels.sh   (then carry .whl)
# Usage on the device: bash dev/device/steps.sh STEP[:SECONDS] ...
#   doctor    kernelsmith doctor                                              [issue 2]
#   fixtures  every fixture solution through `bench --generations` (all visible GPUs), checked
#             against the manifest's verdicts, then the leaderboard of that run  [issues 2, 4]
#   languages the Triton, Numba and PyCUDA AXPY fixtures through the evaluator [issue 16]
#   hostile   the adversarial corpus, each followed by an honest candidate   [issues 2, 5]
#   timing    timing reproducibility tests                                    [issue 2]
#   bench     benchmarks/eval_throughput.py                                   [issue 2]
#   spreadab  timing spread (6 kernels, each evaluated twice) with the defaults (launch hidden,
#             2 ms of GPU warmth before each call) and with one plain flush; one sitting [issue 2]
#   optimize  the whole optimize loop with scripted real kernels              [issue 3]
#   profile   where one candidate's seconds go: stage walls, the sandbox's share, cProfile [issue 13]
#   compile   build seconds of inline candidates: plain load_inline vs the fast builds, and end to end [issue 15]
#   gpusuite  the GPU test files the other steps do not run: fixtures, HPC, model mode       [issue 17]
#   fastbuild the fast and plain builds of inline fixtures compute the same, on the GPU          [issue 15]
#   first     a fresh cache's first inline builds: waiting for the header against not          [issue 15]
#   model     whole-model mode on the two example models, exported packages re-checked, the API example [issue 18]
#   diagref   a launch-bound reference (hpc CG) timed in each phase's protocol, and one evaluation [issue 16]
#   harnessab seconds per candidate, this harness against .old-harness, one sitting [issue 13]
#   hpc       HPC suite: reference timings, recorded generations through bench, language table [issue 16]
#   tools     Nsight Compute profile and compute-sanitizer through the evaluator [issues 3, 5]
#   serve     the reward server scoring a batch through the TRL/verl/OpenRLHF clients [issue 6]
#   overhead  host launch overhead against kernel time, CuPy and load_inline  [issue 2]
#   ray       24 fixtures through `bench --executor ray` (carry .whl-ray: dev/device/fetch_ray_wheel.sh) [issue 6]
#   pool2     the same 24 through the local pool on GPUs 0 and 1, split by GPU UUID  [issue 6]
# Each step's output goes to $OUT/STEP.log; databases and JSON go to $OUT/extra.tgz.
set -u
if ls .whl/*.whl >/dev/null 2>&1; then  # once per machine: parallel lanes share /tmp/site
  [[ -e /tmp/site/.ks-installed ]] || { python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
    --upgrade --target /tmp/site .whl/*.whl && touch /tmp/site/.ks-installed; }
  export PYTHONPATH=/tmp/site
fi
if ls .whl-pycuda/pycuda-*.whl >/dev/null 2>&1; then  # PyCUDA built here: scripts/build_pycuda_wheel.sh (carry .whl-pycuda)
  [[ -e /tmp/site/.ks-pycuda ]] || { python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
    --upgrade --target /tmp/site .whl-pycuda/*.whl && touch /tmp/site/.ks-pycuda; }
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 KERNELSMITH_HOME=/tmp/ks
mkdir -p /tmp/ks && chmod 755 /tmp/ks
OUT=${OUT:-/tmp/out}; X=/tmp/ks-extra; mkdir -p "$OUT" "$X"
KS="python3 -m kernelsmith.cli"

step() {
  case "$1" in
    doctor) $KS doctor ;;
    fixtures)
      python3 benchmarks/fixture_generations.py write $X/fx.jsonl
      if [[ -n ${FIXTURE_FILTER:-} ]]; then grep -E "$FIXTURE_FILTER" $X/fx.jsonl > $X/fx.sub; mv $X/fx.sub $X/fx.jsonl; fi
      KERNELSMITH_COMPILE_BASELINE=0 KERNELSMITH_MAX_TIMING_SECONDS=1 $KS bench --generations $X/fx.jsonl \
        --suite tasks --label fixtures --db "sqlite:///$X/fixtures.db" 2>&1 | tail -25
      run=$(python3 -c "from kernelsmith.store.runs import RunStore; print(RunStore('sqlite:///$X/fixtures.db').list_runs()[0].id)")
      python3 benchmarks/fixture_generations.py check $X/fx.jsonl "$run" --db "sqlite:///$X/fixtures.db"
      python3 dev/runs/trust_stats.py "sqlite:///$X/fixtures.db" "$run"
      $KS leaderboard --db "sqlite:///$X/fixtures.db" --format md --out $X/leaderboard.md && cat $X/leaderboard.md ;;
    languages) python3 -m pytest -q -s -p no:cacheprovider tests/gpu/test_languages_gpu.py ;;  # Triton/Numba/PyCUDA AXPY
    hostile) python3 -m pytest -q -s -p no:cacheprovider tests/gpu/test_hostile_gpu.py ;;  # KS_HOSTILE_ONLY=regex
    timing) python3 -m pytest -q -s -p no:cacheprovider tests/gpu/test_timing_gpu.py 2>&1 | tail -40 ;;
    bench) python3 benchmarks/eval_throughput.py --soak "${SOAK:-200}" --deadline "${BENCH_DEADLINE:-0}" ${BENCH_ARGS:-} \
             --json $X/bench.json ;;
    spreadab)
      for mode in default plain; do
        opts=$(case $mode in plain) echo --no-hide-launch --warm-ms 0 ;; esac)
        echo "-- $mode $opts"
        python3 benchmarks/eval_throughput.py --batch 0 --no-warm --spread 6 --soak 0 --json $X/spread_$mode.json \
          $opts | grep -E "^spread|^soak"
      done ;;
    optimize) python3 dev/device/optimize.py $X/optimize ;;
    profile) python3 benchmarks/harness_profile.py --n "${PROF_N:-6}" --profile "${PROF_K:-2}" \
               --json $X/harness_profile.json ;;
    compile) python3 benchmarks/compile_latency.py --budget "${COMPILE_BUDGET:-400}" ${COMPILE_ARGS:-} --json $X/compile.json ;;
    gpusuite) python3 -m pytest -q -s -p no:cacheprovider tests/gpu/test_fixtures_gpu.py tests/gpu/test_hpc_gpu.py \
                tests/gpu/test_model_gpu.py ;;  # no pipe: a cut step keeps its log
    fastbuild) python3 -m pytest -q -s -p no:cacheprovider tests/gpu/test_fast_build_gpu.py ;;
    first) python3 benchmarks/first_compile.py --n "${FIRST_N:-4}" --json $X/first_compile.json ;;
    model) python3 dev/device/model.py $X/model ;;
    diagref) python3 dev/device/diag_reference.py ${DIAG_ARGS:-} ;;
    harnessab)  # seconds per candidate, this tree against .old-harness (carry it; see the benchmark's docstring)
      python3 benchmarks/harness_overhead.py --old .old-harness --n "${AB_N:-24}" --rounds "${AB_ROUNDS:-2}" \
        --json $X/harness_overhead.json ;;
    hpc)  # the HPC suite: reference timings, then the recorded generations through bench
      python3 benchmarks/hpc_reference.py --json $X/hpc_reference.json
      KERNELSMITH_COMPILE_BASELINE=0 $KS bench --generations benchmarks/hpc/generations.jsonl --suite tasks/hpc \
        --label hpc-recorded --db "sqlite:///$X/hpc.db" 2>&1 | tail -12
      run=$(python3 -c "from kernelsmith.store.runs import RunStore; print(RunStore('sqlite:///$X/hpc.db').list_runs()[0].id)")
      python3 benchmarks/fixture_generations.py check benchmarks/hpc/generations.jsonl "$run" --db "sqlite:///$X/hpc.db"
      $KS leaderboard --db "sqlite:///$X/hpc.db" --format md --out $X/hpc_board.md && cat $X/hpc_board.md ;;
    tools) python3 dev/device/profile_sanitize.py ${TOOLS_CASES:-} ;;
    serve) python3 dev/device/serve.py ;;
    overhead) python3 dev/device/overhead.py tasks/level1/001_leaky_relu_scale.py \
                tests/fixtures/solutions/level1_001_leaky_relu_scale/correct_{cupy,inline}.py ;;
    ray)  # Ray carried as a trimmed wheel (.whl-ray, see fetch_device_wheels.sh); only the needs the machine lacks
      python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/raysite .whl-ray/ray-*.whl || return 1
      for w in .whl-ray/*.whl; do
        mod=$(basename "$w" | cut -d- -f1 | sed 's/^attrs$/attr/;s/^protobuf$/google.protobuf/;s/^pyyaml$/yaml/;s/^rpds_py$/rpds/')
        [[ $mod == ray ]] || python3 -c "import $mod" 2>/dev/null \
          || python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/raysite "$w"
      done
      export PYTHONPATH=$PYTHONPATH:/tmp/raysite
      python3 benchmarks/fixture_generations.py write $X/fx_all.jsonl
      { grep residual_rmsnorm $X/fx_all.jsonl; grep -v -e 'correct_inline.py"' -e residual_rmsnorm $X/fx_all.jsonl \
        | head -22; } > $X/fx_ray24.jsonl
      KERNELSMITH_COMPILE_BASELINE=0 KERNELSMITH_MAX_TIMING_SECONDS=0.5 $KS bench --generations $X/fx_ray24.jsonl \
        --suite tasks --label fixtures-ray --executor ray --db "sqlite:///$X/ray.db" 2>&1 | tail -30
      python3 benchmarks/fixture_generations.py check $X/fx_ray24.jsonl \
        "$(python3 -c "from kernelsmith.store.runs import RunStore; print(RunStore('sqlite:///$X/ray.db').list_runs()[0].id)")" \
        --db "sqlite:///$X/ray.db" | tail -4
      python3 dev/runs/gpu_split.py "sqlite:///$X/ray.db" ;;
    pool2)  # the same 24 rows as `ray`, through the local pool on two GPUs
      python3 benchmarks/fixture_generations.py write $X/fx_all.jsonl
      { grep residual_rmsnorm $X/fx_all.jsonl; grep -v -e 'correct_inline.py"' -e residual_rmsnorm $X/fx_all.jsonl \
        | head -22; } > $X/fx_pool24.jsonl
      KERNELSMITH_COMPILE_BASELINE=0 KERNELSMITH_MAX_TIMING_SECONDS=0.5 $KS bench --generations $X/fx_pool24.jsonl \
        --suite tasks --label fixtures-pool --gpus 0,1 --db "sqlite:///$X/pool.db" 2>&1 | tail -12
      python3 dev/runs/gpu_split.py "sqlite:///$X/pool.db" ;;
    *) echo "unknown step $1"; return 2 ;;
  esac
}

for arg in "$@"; do  # no steps: only the set-up above
  name=${arg%%:*}; secs=${arg#*:}
  # the whole hostile corpus takes ~500 s on an H200: 300 s cut it at entry 64 (2026-12-04)
  [[ $secs == "$arg" ]] && { [[ $name == hostile ]] && secs=590 || secs=300; }
  echo "=== $name (limit ${secs}s) $(date +%T)"
  start=$SECONDS
  # timeout signals its whole process group: the step and what it started die at the limit.
  export -f step; export KS X
  timeout -k 10 "$secs" bash -c "step $name" > "$OUT/$name.log" 2>&1
  rc=$?
  tail -c "${TAIL:-1800}" "$OUT/$name.log"
  echo "=== $name rc=$rc in $((SECONDS - start))s"
done
tar czf "$OUT/extra.tgz" -C "$X" . 2>/dev/null
