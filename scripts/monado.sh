#!/usr/bin/env bash
# Install the Monado OpenXR runtime (Debian trixie packages) into a private
# sysroot, without touching the bookworm system: a private apt directory with
# only trixie sources and an empty dpkg status, so apt resolves a complete
# trixie closure (libc6 included), then `dpkg-deb -x` of each package.
# Idempotent and cached: the .debs stay in $MONADO_CACHE, the sysroot in
# $MONADO_PREFIX/sysroot, and a stamp skips everything on the next run.
# Prints the sysroot path on the last line of stdout.
#
# Facts this follows: ../shared/xr/MONADO.md (how Monado runs headless here).
set -euo pipefail

PREFIX=${MONADO_PREFIX:-${XDG_CACHE_HOME:-$HOME/.cache}/vrscope/monado}
CACHE=${MONADO_CACHE:-$PREFIX/debs}
SYSROOT=$PREFIX/sysroot
STAMP=$SYSROOT/.vrscope-monado-25
# libglx-mesa0 and libx11-6 come with libgl1 anyway; named because the app's GLX
# binding (vrscope xr --graphics glx) loads them from this sysroot.
PACKAGES=(monado-service libopenxr1-monado monado-cli mesa-vulkan-drivers libegl1 libegl-mesa0
  libgl1 libopengl0 libglx-mesa0 libx11-6)

if [ -f "$STAMP" ]; then
  echo "$SYSROOT"
  exit 0
fi

A=$PREFIX/apt
mkdir -p "$A/etc" "$A/lists/partial" "$A/cache/archives/partial" "$A/state" "$CACHE"
: > "$A/state/empty_status"
# Same mirror as the system's own bookworm entry.
uri=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
uri=${uri:-http://deb.debian.org/debian}
cat > "$A/etc/trixie.sources" <<SRC
Types: deb
URIs: $uri
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
APT_OPTS=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$A/etc"
  -o "Dir::State::Lists=$A/lists" -o "Dir::Cache=$A/cache"
  -o "Dir::State::status=$A/state/empty_status" -o APT::Install-Recommends=false
  -o "Dir::Cache::archives=$CACHE" -o Debug::NoLocking=1)
echo "monado: resolving trixie packages into $PREFIX" >&2
apt-get "${APT_OPTS[@]}" -qq update >&2
apt-get "${APT_OPTS[@]}" -qq -y --download-only install "${PACKAGES[@]}" >&2
rm -rf "$SYSROOT.partial"
mkdir -p "$SYSROOT.partial"
n=0
for deb in "$CACHE"/*.deb; do
  dpkg-deb -x "$deb" "$SYSROOT.partial"
  n=$((n + 1))
done
mv -T "$SYSROOT.partial" "$SYSROOT" 2>/dev/null || { rm -rf "$SYSROOT"; mv "$SYSROOT.partial" "$SYSROOT"; }
test -x "$SYSROOT/usr/bin/monado-service"
test -f "$SYSROOT/usr/lib/x86_64-linux-gnu/libopenxr_monado.so"
touch "$STAMP"
echo "monado: $n packages extracted" >&2
echo "$SYSROOT"
