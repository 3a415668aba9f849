#!/usr/bin/env bash
# LiteLLM's proxy in a throwaway virtualenv of its own, for `benchmarks/gateway.py --litellm`.
#
#   benchmarks/litellm_proxy.sh            create or update .venv-litellm (prints its path)
#   benchmarks/litellm_proxy.sh --remove   delete it
#
# The pins are in benchmarks/requirements-litellm.txt; LITELLM_VENV names another folder.
# gateway.py writes the proxy's config and starts it itself (benchmarks/litellm_column.py).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
venv=${LITELLM_VENV:-$root/.venv-litellm}
requirements=$root/benchmarks/requirements-litellm.txt

if [ "${1:-}" = --remove ]; then
  rm -rf "$venv"
  exit 0
fi
stamp=$venv/.installed
if [ -f "$stamp" ] && [ "$stamp" -nt "$requirements" ]; then
  echo "$venv"
  exit 0
fi
test -x "$venv/bin/python" || "${PYTHON:-python3}" -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip >&2
"$venv/bin/python" -m pip install -q -r "$requirements" >&2
touch "$stamp"
echo "$venv"
