#!/usr/bin/env bash
# Builds the release binaries of ringkv: static (CGO_ENABLED=0), with
# -trimpath, stripped, and stamped with the version and the git revision
# they were built from (ringkv version, ringkv_build_info), for each
# platform, into dist/, with their SHA-256 checksums in dist/SHA256SUMS.
#
#   deploy/release.sh v1.2.3         # dist/ringkv-v1.2.3-linux-amd64, -linux-arm64, SHA256SUMS
#   deploy/release.sh                # version from git describe (v1.2.3-4-gabcdef-dirty)
#
# Environment: VERSION (instead of the argument), PLATFORMS (default
# "linux/amd64 linux/arm64"), OUT (default dist, replaced whole). Cross
# builds need only Go: no C toolchain, no network once the modules are in
# the module cache. Check a download with: cd dist && sha256sum -c SHA256SUMS
set -euo pipefail
cd "$(dirname "$0")/.."

version=${1:-${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo devel)}}
if ! [[ $version =~ ^[A-Za-z0-9][A-Za-z0-9._+-]*$ ]]; then
  echo "release.sh: version \"$version\" must be letters, digits and ._+- (v1.2.3)" >&2
  exit 2
fi
platforms=${PLATFORMS:-linux/amd64 linux/arm64}
out=${OUT:-dist}

# The revision is passed explicitly: Go stamps none in a git worktree, a
# source tarball, or under -buildvcs=false.
revision=$(git rev-parse HEAD 2>/dev/null || true)
revtime=$(TZ=UTC git show -s --format=%cd --date=format-local:%Y-%m-%dT%H:%M:%SZ HEAD 2>/dev/null || true)
modified=false
if [ -n "$revision" ] && [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
  modified=true
fi
ldflags="-s -w -X main.version=$version -X main.revision=$revision -X main.revisionTime=$revtime -X main.modified=$modified"

rm -rf "$out"
mkdir -p "$out"
names=()
for p in $platforms; do
  goos=${p%/*} goarch=${p#*/}
  name=ringkv-$version-$goos-$goarch
  echo "--- $name"
  CGO_ENABLED=0 GOOS=$goos GOARCH=$goarch go build -trimpath -ldflags "$ldflags" -o "$out/$name" ./cmd/ringkv
  names+=("$name")
done
(cd "$out" && sha256sum "${names[@]}" > SHA256SUMS)
cat "$out/SHA256SUMS"
