#!/usr/bin/env bash
# Ray for the GPU machine, trimmed under the device tool's 64 MiB carry limit: the wheel
# (79 MB) without its Java jars, dashboard build and libraries kernelsmith does not use
# (rllib, data, train, tune, serve, llm) is 39 MB. Plus the small wheels Ray needs; the
# `ray` step of dev/device/steps.sh installs only those the machine lacks. Run here, then
# carry .whl-ray (with .whl). Usage: bash dev/device/fetch_ray_wheel.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
grep -qx "/.whl-ray/" .git/info/exclude 2>/dev/null || { mkdir -p .git/info; echo "/.whl-ray/" >> .git/info/exclude; }
tmp=$(mktemp -d)
../shared/tools/device-wheels "$tmp" ray==2.60.0 click filelock jsonschema jsonschema-specifications referencing \
  rpds-py attrs "msgpack<2" "packaging>=24.2" protobuf pyyaml requests certifi charset-normalizer urllib3 >/dev/null
mkdir -p .whl-ray
mv "$tmp"/*.whl .whl-ray/
python3 - <<'PY'
import glob, os, zipfile
src = glob.glob(".whl-ray/ray-*.whl")[0]
drop = ("ray/jars/", "ray/dashboard/client/build/", "ray/rllib/", "ray/llm/", "ray/data/", "ray/tune/",
        "ray/train/", "ray/serve/")
keep = lambda name: not name.startswith(drop) and not name.endswith(".map")
with zipfile.ZipFile(src) as zi, zipfile.ZipFile(src + ".tmp", "w", zipfile.ZIP_DEFLATED) as zo:
    for info in zi.infolist():
        if not keep(info.filename):
            continue
        data = zi.read(info.filename)
        if info.filename.endswith(".dist-info/RECORD"):  # list only what the wheel still holds
            data = b"\n".join(l for l in data.split(b"\n") if keep(l.decode().split(",")[0]))
        zo.writestr(info, data)
os.replace(src + ".tmp", src)
PY
du -sh .whl-ray
