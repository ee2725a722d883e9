#!/usr/bin/env bash
# PyCUDA publishes no wheels, only an sdist. This builds a wheel of it for one Python
# (its bundled Boost.Python, no system Boost), checks what the wheel's extensions need
# at run time, and puts it with the wheels of its pure-Python dependencies into one
# folder that installs offline (docs/languages.md, "PyCUDA has no wheel").
#
# Build (here, or on any x86_64 Linux machine with the CUDA toolkit and g++; no GPU needed):
#   bash scripts/build_pycuda_wheel.sh build [--python PY] [--out DIR] [--version V]
#        [--cuda-root DIR] [--sdist FILE] [--curand] [--no-deps] [--no-src] [--keep]
#   defaults: --python python3, --out .whl-pycuda (at the repository root; git-ignored),
#   --version 2026.1, --cuda-root from $CUDA_HOME, $CUDA_PATH, nvcc or /usr/local/cuda.
#   Needs pip to reach a package index for the sdist (or --sdist FILE), for numpy>=2,
#   setuptools and wheel (or those already installed for PY) and for the
#   dependencies' wheels (or --no-deps). OUT/src gets the sdist and the setuptools,
#   wheel and packaging wheels (unless --no-src), so that the GPU machine can rebuild
#   offline, e.g. against an older toolkit and driver, with its own numpy:
#     PIP_NO_INDEX=1 PIP_FIND_LINKS=$PWD/.whl-pycuda/src \
#       bash scripts/build_pycuda_wheel.sh build --no-deps --no-src --out /tmp/whl-pycuda
# Install on the GPU machine (offline; the wheel's folder carried along):
#   bash scripts/build_pycuda_wheel.sh install [DIR] [TARGET]     (defaults .whl-pycuda, /tmp/site)
#   which is
#   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
#     --target /tmp/site .whl-pycuda/*.whl && export PYTHONPATH=/tmp/site
#   followed by an import of pycuda.driver and cuInit (the check fails without a driver).
#
# What the build does differently from a plain `pip install pycuda`:
# - --cuda-root is the toolkit (the directory with include/cuda.h). configure.py's default
#   is /usr/local, and a toolkit reached through a wrapper such as /usr/local/bin/nvcc
#   gives the same wrong root: the build then fails on `cuda.h: No such file`, after pages
#   of harmless Boost warnings (errors.cpp among them) that look like the failure.
# - _driver links libcuda.so.1, the driver's library, which a machine without a GPU lacks.
#   The toolkit's lib64/stubs/libcuda.so is used where it exists; otherwise (a toolkit
#   installed from pip wheels has no stubs) a stub with the soname libcuda.so.1 is made
#   here from the cu* functions declared in cuda.h and cudaProfiler.h. It is only linked
#   against, never shipped: at run time the GPU machine's own libcuda.so.1 is loaded.
# - CURAND is left out unless --curand (it would tie the wheel to a libcurand.so.10 on
#   the GPU machine's library path; pycuda.curandom then cannot make its generators).
# - -g0 and -s: no debug information (_driver is 1.8 MB instead of 12, the wheel 0.5 MB).
set -euo pipefail

die() { echo "build_pycuda_wheel: $*" >&2; exit 1; }
ROOT=$(cd "$(dirname "$0")/.." && pwd)
MODE=build
if [[ $# -gt 0 && $1 != -* ]]; then MODE=$1; shift; fi

if [[ $MODE == install ]]; then
  DIR=${1:-.whl-pycuda} TARGET=${2:-/tmp/site} PY=${PYTHON:-python3}
  ls "$DIR"/pycuda-*.whl >/dev/null 2>&1 || die "no pycuda wheel in $DIR"
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$TARGET" "$DIR"/*.whl
  PYTHONPATH=$TARGET${PYTHONPATH:+:$PYTHONPATH} "$PY" -c '
import pycuda, pycuda.driver as drv
drv.init()
print("pycuda", pycuda.VERSION_TEXT, "CUDA headers", drv.get_version(), "driver", drv.get_driver_version(),
      "devices", drv.Device.count())'
  echo "installed into $TARGET: export PYTHONPATH=$TARGET\${PYTHONPATH:+:\$PYTHONPATH}"
  exit 0
fi
[[ $MODE == build ]] || die "usage: $0 build [options] | install [DIR] [TARGET]"

PY=python3 OUTDIR=$ROOT/.whl-pycuda VERSION=2026.1 CUDA_ROOT=${CUDA_ROOT:-} SDIST= CURAND=0 DEPS=1 KEEP=0 SRC_KIT=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --python) PY=$2; shift 2 ;;
    --out) OUTDIR=$2; shift 2 ;;
    --version) VERSION=$2; shift 2 ;;
    --cuda-root) CUDA_ROOT=$2; shift 2 ;;
    --sdist) SDIST=$(realpath "$2"); shift 2 ;;
    --curand) CURAND=1; shift ;;
    --no-deps) DEPS=0; shift ;;
    --no-src) SRC_KIT=0; shift ;;
    --keep) KEEP=1; shift ;;
    *) die "unknown option $1" ;;
  esac
done
PY=$(command -v "$PY") || die "no Python $PY"
PYVER=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
CPTAG=cp${PYVER/./}

# The toolkit: the first candidate with include/cuda.h.
if [[ -z $CUDA_ROOT ]]; then
  for c in "${CUDA_HOME:-}" "${CUDA_PATH:-}" \
           "$(command -v nvcc >/dev/null && dirname "$(dirname "$(readlink -f "$(command -v nvcc)")")")" \
           /usr/local/cuda; do
    [[ -n $c && -f $c/include/cuda.h ]] && { CUDA_ROOT=$c; break; }
  done
fi
[[ -n $CUDA_ROOT && -f $CUDA_ROOT/include/cuda.h ]] || die "no CUDA toolkit (include/cuda.h) found; pass --cuda-root"
CUDA_ROOT=$(readlink -f "$CUDA_ROOT")
command -v g++ >/dev/null || die "g++ is needed"

WORK=$(mktemp -d /tmp/pycuda-build.XXXXXX)
[[ $KEEP == 1 ]] || trap 'rm -rf "$WORK"' EXIT
LOG=$WORK/build.log
echo "python $PY ($PYVER), CUDA $CUDA_ROOT, pycuda $VERSION, work $WORK"

# Build dependencies go to WORK/bdeps, ahead of PY's own packages on PYTHONPATH (no venv:
# Ubuntu's python3 has none without python3-venv); numpy>=2 so that the extension also
# runs with numpy 1.25 and later.
BD=$WORK/bdeps V=$PY
export PYTHONPATH=$BD${PYTHONPATH:+:$PYTHONPATH}
"$V" -m pip install -q --target "$BD" setuptools wheel >>"$LOG" 2>&1 \
  || echo "could not install setuptools and wheel (offline?); using PY's own" >&2
"$V" -c 'import numpy, sys; sys.exit(int(numpy.__version__.split(".")[0]) < 2)' 2>/dev/null \
  || "$V" -m pip install -q --target "$BD" "numpy>=2" >>"$LOG" 2>&1 \
  || echo "could not install numpy>=2 (offline?); using PY's own numpy (the wheel then needs at least that one)" >&2
"$V" -c 'import numpy, setuptools; print("numpy", numpy.__version__, "setuptools", setuptools.__version__)' \
  || die "the build needs numpy and setuptools (with wheel where setuptools is older than 70.1) for $PY"

# The sdist.
if [[ -z $SDIST ]]; then
  "$V" -m pip download -q --no-deps --no-binary :all: --no-build-isolation -d "$WORK" "pycuda==$VERSION" >>"$LOG" 2>&1 \
    || { tail -20 "$LOG"; die "could not download the pycuda $VERSION sdist (pass --sdist FILE)"; }
  SDIST=$(ls "$WORK"/pycuda-*.tar.gz)
fi
tar xzf "$SDIST" -C "$WORK"
SRC=$(ls -d "$WORK"/pycuda-*/)

# The driver library to link against (never shipped).
DRV=
for d in "$CUDA_ROOT"/lib64/stubs "$CUDA_ROOT"/lib/stubs "$CUDA_ROOT"/targets/*/lib/stubs; do
  [[ -f $d/libcuda.so ]] && { DRV=$d; break; }
done
if [[ -z $DRV ]]; then
  DRV=$WORK/stub; mkdir -p "$DRV"
  printf '#include <cuda.h>\n#include <cudaProfiler.h>\n' | gcc -E -P -I"$CUDA_ROOT/include" -x c - \
    | "$V" -c '
import re, sys
names = sorted(set(re.findall(r"\b(cu[A-Za-z0-9_]+)\s*\(", sys.stdin.read())))
sys.stdout.write("".join("void %s(void) {}\n" % n for n in names))' > "$DRV/stub.c"
  gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$DRV/libcuda.so" "$DRV/stub.c"
  echo "no libcuda stub in the toolkit: made one ($(grep -c . "$DRV/stub.c") functions)"
fi

# Configure and build. HOME moved so that a ~/.aksetup-defaults.py cannot change the build.
CONF=(--cuda-root="$CUDA_ROOT" --cudadrv-lib-dir="$DRV" --cxxflags=-g0 --ldflags=-s)
if [[ $CURAND == 1 ]]; then
  CONF+=(--curand-lib-dir="$CUDA_ROOT/lib64")
else
  CONF+=(--no-cuda-enable-curand)
fi
cd "$SRC"
HOME=$WORK "$V" configure.py "${CONF[@]}" >>"$LOG" 2>&1
echo "building (a few minutes on two cores; log $LOG) ..."
HOME=$WORK nice -n 10 "$V" -m pip wheel -v --no-build-isolation --no-deps -w "$WORK/dist" . >>"$LOG" 2>&1 \
  || { grep -E "error|Error" "$LOG" | grep -v -E "errors\.(hpp|cpp)|error_code|-Werror" | tail -20; die "build failed (log $LOG; --keep keeps it)"; }
WHL=$(ls "$WORK"/dist/pycuda-*-"$CPTAG"-*.whl) || die "no $CPTAG wheel built"

# Checks: what the extensions need, symbol versions, and an import against the stub.
mkdir "$WORK/chk" && (cd "$WORK/chk" && "$V" -m zipfile -e "$WHL" .)
ALLOWED="libcuda.so.1 libstdc++.so.6 libgcc_s.so.1 libc.so.6 libm.so.6 ld-linux-x86-64.so.2 libpthread.so.0 libdl.so.2 librt.so.1"
[[ $CURAND == 1 ]] && ALLOWED+=" libcurand.so.10"
for so in "$WORK"/chk/pycuda/*.so; do
  need=$(readelf -d "$so" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ')
  vers=$(objdump -T "$so" | grep -oE '\b(GLIBC|GLIBCXX|CXXABI)_[0-9.]+' | sort -u -V | tr '\n' ' ')
  echo "$(basename "$so"): needs $need"
  echo "  symbol versions: $vers"
  for n in $need; do [[ " $ALLOWED " == *" $n "* ]] || die "$(basename "$so") needs $n, which the GPU machine may lack"; done
  if readelf -d "$so" | grep -qE 'RPATH|RUNPATH'; then die "$(basename "$so") has an RPATH"; fi
done
max() { objdump -T "$WORK"/chk/pycuda/*.so | grep -oE "\b$1_[0-9.]+" | sed "s/$1_//" | sort -u -V | tail -1; }
echo "newest: GLIBC_$(max GLIBC) GLIBCXX_$(max GLIBCXX) CXXABI_$(max CXXABI) (Ubuntu 24.04: 2.39, 3.4.33, 1.3.15)"
[[ $(printf '%s\n' "$(max GLIBC)" 2.39 | sort -V | tail -1) == 2.39 ]] || die "needs a glibc newer than 2.39"
[[ $(printf '%s\n' "$(max GLIBCXX)" 3.4.33 | sort -V | tail -1) == 3.4.33 ]] || die "needs a libstdc++ newer than GLIBCXX_3.4.33"
if [[ $DEPS == 1 ]]; then  # pycuda needs pytools, platformdirs and mako (pytools: siphash24, typing-extensions)
  "$V" -m pip download -q --only-binary :all: --python-version "$PYVER" --implementation cp --abi "$CPTAG" \
    --platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64 -d "$WORK/deps" \
    pytools platformdirs mako >>"$LOG" 2>&1 \
    || { echo "warning: could not download the dependencies' wheels (offline?)" >&2; rm -rf "$WORK/deps"; }
fi
# Install as on the GPU machine (--target, no index, no deps), then import: every cu* symbol
# _driver needs must be a driver API function (the import binds them all), and the
# dependencies must be complete for pycuda.compiler and pycuda.gpuarray.
mkdir "$WORK/rt" && ln -s "$DRV/libcuda.so" "$WORK/rt/libcuda.so.1"
"$V" -m pip install -q --no-index --no-deps --target "$WORK/site" "$WHL" $(ls "$WORK"/deps/*.whl 2>/dev/null) >>"$LOG" 2>&1
cd "$WORK"
PYTHONPATH=$WORK/site:$BD "$V" -c 'import pycuda; print("import pycuda:", pycuda.VERSION_TEXT)'
CHECK='import pycuda.driver'; [[ -d $WORK/deps ]] && CHECK+=', pycuda.compiler, pycuda.gpuarray'
if LD_LIBRARY_PATH=$WORK/rt PYTHONPATH=$WORK/site:$BD "$V" -c "$CHECK" 2>"$WORK/imp.err"; then
  echo "$CHECK: resolves against the driver API (the link stub; on a GPU machine, its libcuda.so.1)"
else
  cat "$WORK/imp.err" >&2
  [[ $DRV == "$WORK/stub" ]] && die "the import failed against the stub (above)"
  echo "warning: the import failed against the toolkit's stub (above)" >&2
fi

mkdir -p "$OUTDIR"
rm -f "$OUTDIR"/pycuda-*-"$CPTAG"-*.whl
cp "$WHL" $(ls "$WORK"/deps/*.whl 2>/dev/null) "$OUTDIR/"
if [[ $SRC_KIT == 1 ]]; then  # what an offline rebuild needs: the sdist, setuptools, wheel (needs packaging)
  mkdir -p "$OUTDIR/src"
  [[ $(realpath "$SDIST") == $(realpath "$OUTDIR/src")/$(basename "$SDIST") ]] || cp "$SDIST" "$OUTDIR/src/"
  "$V" -m pip download -q --only-binary :all: --no-deps -d "$OUTDIR/src" setuptools wheel packaging >>"$LOG" 2>&1 \
    || echo "warning: could not download setuptools, wheel and packaging into $OUTDIR/src" >&2
fi
echo "wheels in $OUTDIR:"; ls -l "$OUTDIR"
if [[ -d $OUTDIR/src ]]; then ls -l "$OUTDIR/src"; fi
echo "install offline: python3 -m pip install --no-index --no-deps --target /tmp/site $OUTDIR/*.whl"
