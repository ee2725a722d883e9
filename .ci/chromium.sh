#!/usr/bin/env bash
# Install (when missing) Debian's headless-capable Chromium, used by the leaderboard's
# HTML test (tests/leaderboard/test_html_chromium.py). Idempotent: when `chromium` is
# already on PATH it only prints its version. Exits non-zero when it cannot be installed
# or does not start.
set -euo pipefail

if ! command -v chromium >/dev/null 2>&1; then
    SUDO=""
    if [ "$(id -u)" != "0" ]; then
        command -v sudo >/dev/null 2>&1 || { echo "chromium.sh: not root and no sudo" >&2; exit 1; }
        SUDO="sudo"
    fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
fi

command -v chromium >/dev/null 2>&1 || { echo "chromium.sh: chromium is still missing" >&2; exit 1; }
chromium --version
