#!/usr/bin/env bash
# Set up everything vrscope needs on a Debian/Ubuntu machine: system packages
# (when run as root), a .venv with torch==2.13.0 first (the CPU wheel; any other
# torch spec pulls gigabytes of CUDA packages), then vrscope with all extras.
# Idempotent: a stamp file skips the pip step when pyproject.toml is unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
# Xvfb for the Qt tests (xauth is needed by xvfb-run), the xcb libraries Qt's
# xcb platform loads, Mesa EGL/GL for offscreen VTK rendering, and openssl
# (the collaboration TLS test makes a throw-away certificate).
APT_PACKAGES=(xvfb xauth libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0
  libxcb-xinerama0 libxcb-xkb1 libxkbcommon-x11-0 libxcb-cursor0 libxcb-shape0 libxcb-randr0
  libegl1 libgl1 libglx-mesa0 libgl1-mesa-dri libegl-mesa0 libdbus-1-3 libfontconfig1 openssl)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing system packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "setup: please install these system packages (as root): apt-get install ${missing[*]}" >&2
    echo "setup: continuing; Qt/XR tests need them" >&2
  fi
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.vrscope-installed"
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setup: installing torch==2.13.0 (CPU) and vrscope[viewer,ml,xr,collab,dev] into $VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip setuptools wheel 2>&1 | grep -v "^WARNING: Location" || true
  "$VENV/bin/python" -m pip install -q "torch==2.13.0" 2>&1 | grep -v "^WARNING: Location" || true
  "$VENV/bin/python" -m pip install -q -e ".[viewer,ml,xr,collab,dev]" 2>&1 | grep -v "^WARNING: Location" || true
  "$VENV/bin/python" -c "import torch, vtk, zarr, analysis" # fail loudly if the install did not work
  echo "$want" > "$stamp"
fi

# The OpenXR runtime for the xr_runtime tests: Monado from Debian trixie in a private,
# cached sysroot (never installed into this system; see scripts/monado.sh, docs/xr.md).
if command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null; then
  scripts/monado.sh >/dev/null || echo "setup: Monado install failed; xr_runtime tests will fail" >&2
fi
