#!/usr/bin/env bash
# Wheels the GPU machine lacks (openai, SQLAlchemy, Alembic and what they need), for
# scripts that use the LLM client or runs.db there. Run here, then name .whl in the
# device call's `carry` and start the command with:
#   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
#     --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
set -euo pipefail
cd "$(dirname "$0")/../.."
grep -qx "/.whl/" .git/info/exclude 2>/dev/null || { mkdir -p .git/info; echo "/.whl/" >> .git/info/exclude; }
../shared/tools/device-wheels .whl openai==3.57.0 sqlalchemy==2.1.9 alembic==1.20.1 mako==1.4.3 \
  pydantic pydantic-core jiter httpx2 httpcore2 truststore idna h11 sniffio annotated-types \
  typing-inspection typing-extensions greenlet
