#!/usr/bin/env bash
# The whole test suite, as CI runs it: set-up, static checks, then pytest under
# Xvfb with VTK rendering offscreen through EGL. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
V=.venv/bin
echo "== ruff"; $V/ruff check . && $V/ruff format --check .
echo "== mypy"; $V/mypy analysis viewer vrscope xrmode
echo "== import-linter"; $V/lint-imports
echo "== pytest"
export VTK_DEFAULT_OPENGL_WINDOW=vtkEGLRenderWindow
export QT_QPA_PLATFORM=xcb
export MPLBACKEND=Agg
if command -v xvfb-run >/dev/null; then
  xvfb-run -a -s "-screen 0 1920x1080x24" $V/pytest -n 2 --timeout 900 "$@"
else
  echo "test: xvfb-run not found (apt-get install xvfb xauth); Qt tests will fail" >&2
  $V/pytest -n 2 --timeout 900 "$@"
fi
