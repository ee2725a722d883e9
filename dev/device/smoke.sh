#!/usr/bin/env bash
# First look on a GPU machine: doctor, then one CuPy and one load_inline candidate.
set -u
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} KERNELSMITH_HOME=/tmp/ks PYTHONUNBUFFERED=1
mkdir -p /tmp/ks && chmod 755 /tmp/ks
python3 -m kernelsmith.cli doctor
T=tasks/level1/001_leaky_relu_scale.py; S=tests/fixtures/solutions/level1_001_leaky_relu_scale
for c in correct_cupy.py correct_inline.py wrong.py; do
  /usr/bin/time -f "wall %e s" python3 -m kernelsmith.cli eval $T $S/$c
done
python3 -m kernelsmith.cli eval tasks/level1/004_matmul.py tests/fixtures/solutions/level1_004_matmul/correct_cupy.py --json > ${OUT:-/tmp}/matmul.json; echo "json rc=$?"
tail -c 1500 ${OUT:-/tmp}/matmul.json
