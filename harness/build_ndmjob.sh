#!/usr/bin/env bash
# Builds Amanda's `ndmjob` (the NDMP DMA and conformance tester our NDMP tests drive) with
# the fixes its test-tape suite needs to pass against any correct tape server, and prints
# the path of the binary on stdout (progress goes to stderr).
#
# Usage: harness/build_ndmjob.sh [--force]
#   --force   rebuild even when the cached binary is current
# Environment:
#   QORESTOR_TOOLS     cache directory (default /var/cache/qorestor-tools as root,
#                      else ~/.cache/qorestor-tools); the binary is $QORESTOR_TOOLS/ndmjob
#   NDMJOB_SRC_SUITES  Debian suites whose amanda source package may be used when the
#                      installed amanda-common's own is not served (default: trixie)
#   NDMJOB_TARBALL     an amanda upstream tarball to build from (no download)
#
# Why a build of our own (harness/ndmjob/fixes.patch says where):
#   - T-BWR reads its bytes back through a signed char and compares them with 0..255,
#     so every byte >= 0x80 "mismatches";
#   - T-WRITE/T-READ make their data pattern from a struct whose padding is never set,
#     so 4 bytes of every 16 are stack garbage that differs between write and read;
#   - GLib's g_malloc(0) is NULL, which ndmp-src takes for out-of-memory: zero-length
#     TAPE_WRITE/TAPE_READ are never sent (harness/ndmjob/zero_alloc.c).
# How: the amanda upstream tarball comes from Debian's source package (`apt-get source
# --download-only`, through a private apt state directory: the system's apt configuration
# is not touched); only ndmp-src is extracted, patched and compiled (harness/ndmjob/Makefile)
# against the installed amanda-common's libamanda. Build dependencies (Debian): amanda-common
# gcc libc6-dev make patch pkg-config rpcsvc-proto libglib2.0-dev libtirpc-dev.
# The result is cached with a stamp of its inputs: a second call only prints the path.
# Exit status: 0 (path printed), 1 failure.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
recipe=$here/ndmjob
if [ "$(id -u)" = 0 ]; then default_tools=/var/cache/qorestor-tools; else default_tools=${XDG_CACHE_HOME:-$HOME/.cache}/qorestor-tools; fi
tools=${QORESTOR_TOOLS:-$default_tools}
bin=$tools/ndmjob
force=0
case "${1:-}" in
  --force) force=1 ;;
  "") ;;
  *) sed -n '2,/^set -euo/p' "$0" | sed '$d' >&2; exit 1 ;;
esac

say() { echo "build_ndmjob: $*" >&2; }
fail() { say "$*"; exit 1; }

installed_amanda() {
  dpkg-query -W -f '${db:Status-Status} ${Version}\n' amanda-common 2>/dev/null | awk '$1 == "installed" { print $2 }'
}
# Everything the binary depends on: our recipe files and the libamanda it links.
inputs_stamp() {
  echo "amanda-common $(installed_amanda)"
  (cd "$recipe" && sha256sum Makefile amanda-compat.h zero_alloc.c fixes.patch)
}
current() {
  [ "$force" = 0 ] && [ -x "$bin" ] && [ -f "$bin.inputs" ] && [ "$(inputs_stamp)" = "$(cat "$bin.inputs")" ] \
    && ! ldd "$bin" | grep -q 'not found'
}

for cmd in dpkg-query apt-get gcc make patch rpcgen pkg-config; do
  command -v "$cmd" > /dev/null || fail "missing $cmd (Debian packages: gcc make patch rpcsvc-proto pkg-config)"
done
[ -n "$(installed_amanda)" ] || fail "amanda-common is not installed (its libamanda is linked)"
if current; then echo "$bin"; exit 0; fi
mkdir -p "$tools"
exec {lock}> "$tools/ndmjob.lock"
flock "$lock"
if current; then echo "$bin"; exit 0; fi
started=$SECONDS

libamanda=$(dpkg -L amanda-common | grep -E '/libamanda-[0-9.]+\.so$' | head -n 1)
[ -f "$libamanda" ] || fail "amanda-common ships no libamanda-*.so"
work=$(mktemp -d "${TMPDIR:-/tmp}/build-ndmjob.XXXXXX")
trap 'rm -rf "$work"' EXIT

# --- the amanda upstream tarball ------------------------------------------------------------
# Debian's source package of the installed version first; some mirrors no longer serve old
# ones, so then the newest of NDMJOB_SRC_SUITES (trixie's 3.5.4 has the same ndmp-src code).
fetch_tarball() {
  local apt=$work/apt
  mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$apt/sources.list.d" "$work/download"
  # deb-src lines for every Debian archive the system's deb lines use, plus the extra suites.
  apt-get indextargets --format '$(REPO_URI) $(RELEASE) $(COMPONENT)' 'Created-By: Packages' | sort -u > "$apt/debs"
  [ -s "$apt/debs" ] || fail "apt has no package indexes (run apt-get update)"
  local mirror suite
  mirror=$(awk '$2 !~ /-/ { print $1; exit }' "$apt/debs")
  {
    sed 's/^/deb-src /' "$apt/debs"
    for suite in ${NDMJOB_SRC_SUITES-trixie}; do echo "deb-src ${mirror:-http://deb.debian.org/debian/} $suite main"; done
  } | sort -u > "$apt/sources.list"
  local opts=(-o "Dir::Etc::SourceList=$apt/sources.list" -o "Dir::Etc::SourceParts=$apt/sources.list.d"
    -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache" -o APT::Sandbox::User=root
    -o Acquire::Languages=none -q=2)
  say "reading the amanda source package indexes"
  apt-get "${opts[@]}" update >&2 || say "apt-get update reported errors; using the indexes it got"
  local versions version upstream
  versions=$(apt-cache "${opts[@]}" showsrc amanda 2>/dev/null | awk '/^Version:/ { print $2 }' | sort -u -rV)
  [ -n "$versions" ] || fail "no amanda source package in any index"
  # The installed version first, then the others, newest first.
  versions=$( (echo "$versions" | grep -Fx "$(installed_amanda)" || true; echo "$versions" | grep -vFx "$(installed_amanda)" || true) )
  for version in $versions; do
    upstream=${version#*:}
    upstream=${upstream%-*}
    say "apt-get source --download-only amanda=$version"
    (cd "$work/download" && apt-get "${opts[@]}" source --download-only "amanda=$version" > /dev/null 2>&1) || true
    for f in "$work/download/amanda_$upstream.orig.tar".*; do
      case "$f" in *.asc | *'*') ;; *) tarball=$f; amanda_version=$upstream; return 0 ;; esac
    done
  done
  fail "none of the amanda source packages ($(echo $versions)) could be downloaded; set NDMJOB_TARBALL"
}
tarball=${NDMJOB_TARBALL:-}
amanda_version=
if [ -n "$tarball" ]; then
  [ -f "$tarball" ] || fail "NDMJOB_TARBALL=$tarball does not exist"
  amanda_version=$(basename "$tarball" | grep -oE '[0-9]+(\.[0-9]+)+' | head -n 1)
else
  fetch_tarball
fi

# --- extract ndmp-src, fix, build -----------------------------------------------------------
src=$work/src
mkdir -p "$src" "$work/build"
tar -xf "$tarball" -C "$src" --strip-components=1 --wildcards '*/ndmp-src/*' || fail "no ndmp-src in $tarball"
patch -d "$src" -p1 --batch --forward --no-backup-if-mismatch < "$recipe/fixes.patch" >&2 \
  || fail "fixes.patch does not apply to amanda $amanda_version"
# The tarball's rpcgen outputs are made again with this system's rpcgen.
rm -f "$src"/ndmp-src/ndmp[0-9]_xdr.c "$src"/ndmp-src/ndmp[0-9].h
say "compiling ndmjob from amanda $amanda_version's ndmp-src"
nice -n 10 make -s -C "$work/build" -f "$recipe/Makefile" -j"$(nproc)" \
  SRC="$src/ndmp-src" HERE="$recipe" LIBAMANDA="$libamanda" VERSION="$amanda_version" ndmjob >&2 \
  || fail "compiling ndmjob failed"
"$work/build/ndmjob" -help 2>&1 | grep -q test-tape || fail "the new ndmjob does not run"
install -m 0755 "$work/build/ndmjob" "$bin.new"
mv -f "$bin.new" "$bin"
inputs_stamp > "$bin.inputs"
say "built $bin in $((SECONDS - started)) s"
echo "$bin"
