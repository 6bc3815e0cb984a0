#!/usr/bin/env bash
# Set up everything vrscope needs on a Debian/Ubuntu machine: system packages
# (when run as root), then a .venv holding exactly requirements-lock.txt (every package pinned
# with its hashes, torch as the 2.13.0 CPU build; `make lock` regenerates it) and vrscope itself,
# editable, with no dependency resolution at all: two fresh machines get the same environment.
# Idempotent: a stamp file skips the pip step while the lock and pyproject.toml are unchanged;
# when either changed the .venv is made anew, so nothing outside the lock lingers in it.
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

LOCK=requirements-lock.txt
stamp="$VENV/.vrscope-installed"
want="$(cat "$LOCK" pyproject.toml | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  # The CPU build of torch is not on PyPI: this machine kind keeps its wheel in /opt/wheels
  # (pip's own find-links there); elsewhere it comes from PyTorch's CPU index.
  torch_links=${TORCH_WHEELS:-}
  if [ -z "$torch_links" ]; then
    if compgen -G "/opt/wheels/torch-2.13.0+cpu-*.whl" >/dev/null; then torch_links=/opt/wheels
    else torch_links=https://download.pytorch.org/whl/cpu/torch/; fi
  fi
  [ -d "$VENV" ] && echo "setup: $LOCK or pyproject.toml changed: making $VENV anew"
  rm -rf "$VENV"
  echo "setup: creating $VENV from $LOCK"
  "$PYTHON" -m venv "$VENV"
  pip=("$VENV/bin/python" -m pip --disable-pip-version-check)
  "${pip[@]}" install -q --require-hashes --no-deps --find-links "$torch_links" -r "$LOCK" 2>&1 \
    | { grep -v "^WARNING: Location" || true; }
  # vrscope itself: no dependencies (they are the lock) and no build isolation (setuptools and
  # wheel are in the lock too, so even the build backend is pinned).
  "${pip[@]}" install -q --no-deps --no-build-isolation -e . 2>&1 | { grep -v "^WARNING: Location" || true; }
  "$VENV/bin/python" -c "import torch, vtk, zarr, analysis" # fail loudly if the install did not work
  "${pip[@]}" check
  echo "$want" > "$stamp"
fi

# The OpenXR runtime for the xr_runtime tests: Monado from Debian trixie in a private,
# cached sysroot (never installed into this system; see scripts/monado.sh, docs/xr.md).
if command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null; then
  scripts/monado.sh >/dev/null || echo "setup: Monado install failed; xr_runtime tests will fail" >&2
fi
