#!/usr/bin/env bash
# Regenerate requirements-lock.txt: every package of the whole environment (all extras, the
# dev tools, the build backend), pinned with hashes, resolved by uv for the machine CI runs on
# (Linux x86_64, glibc 2.36 as on Debian 12, CPython 3.11.7). scripts/setup.sh installs exactly
# this file. A lock update is its own commit, with `make test` run on it (docs/development.md).
#
#   scripts/lock.sh                      resolve anew, keeping the pins that still fit
#   scripts/lock.sh --upgrade            take the newest releases the bounds allow
#   scripts/lock.sh --upgrade-package X  move one package
#
# torch is the CPU build (2.13.0+cpu): its wheel is looked up in $TORCH_WHEELS (this machine
# kind keeps it in /opt/wheels; elsewhere point it at a folder holding the wheel, or at
# https://download.pytorch.org/whl/cpu/torch/).
set -euo pipefail
cd "$(dirname "$0")/.."
TORCH_WHEELS=${TORCH_WHEELS:-/opt/wheels}
# uv itself is pinned in the lock: the .venv's, or else the locked release in a venv of its own
# (so a pyproject.toml that no longer matches the .venv can still be locked).
if [ -z "${UV:-}" ]; then
  if [ -x .venv/bin/uv ]; then
    UV=.venv/bin/uv
  else
    tool=.cache/lock-tool
    if [ ! -x "$tool/bin/uv" ]; then
      python3 -m venv "$tool"
      awk '/^uv==/{on=1; print; next} on && /^ /{print; next} {on=0}' requirements-lock.txt \
        | grep -v '# via' > "$tool/uv.txt"
      "$tool/bin/python" -m pip install -q --require-hashes --no-deps -r "$tool/uv.txt"
    fi
    UV=$tool/bin/uv
  fi
fi
UV=$(realpath "$UV")

# uv resolves from copies of pyproject.toml and of the build requirements in a scratch folder, so
# that the "# via" notes in the lock name them by their short names, not by a temporary path.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp pyproject.toml "$work/"
python3 -c 'import sys, tomllib
reqs = tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"]
open(sys.argv[1], "w").write("\n".join(reqs) + "\n")' "$work/build-system.in"
[ -f requirements-lock.txt ] && cp requirements-lock.txt "$work/"
(cd "$work" && "$UV" pip compile pyproject.toml build-system.in \
  --all-extras --generate-hashes \
  --python-version 3.11.7 --python-platform x86_64-manylinux_2_36 \
  --find-links "$TORCH_WHEELS" --no-emit-find-links \
  --custom-compile-command "make lock" \
  --output-file requirements-lock.txt --quiet "$@")
cp "$work/requirements-lock.txt" requirements-lock.txt
echo "lock: wrote requirements-lock.txt ($(grep -cE '^[A-Za-z0-9._-]+==' requirements-lock.txt) packages)"
