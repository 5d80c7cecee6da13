#!/usr/bin/env bash
# build.sh prints a directory holding MetalLB's controller and speaker, its
# CRDs and its version, for the benchmarks that run MetalLB beside vipd
# (VIPD_METALLB), building it first if needed.
#
# Both programs are built from this module (the go.universe.tf/metallb
# version its go.mod requires); the CRDs are copied from the same module's
# config/crd/bases. The directory is named after a hash of go.mod, go.sum
# and this script, so a version bump builds anew and anything else reuses
# the cache:
#
#   ${VIPD_METALLB_CACHE:-/var/cache/vipd/metallb}/<hash>/
#     controller  speaker  crds/*.yaml  VERSION
#
# A cold build takes a few minutes on two cores. Only the directory goes to
# stdout; progress goes to stderr.
set -euo pipefail

exec 3>&1 1>&2 # stdout is for the answer alone

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${VIPD_METALLB_CACHE:-/var/cache/vipd/metallb}
go=${GO:-go}

hash=$(cat "$here/go.mod" "$here/go.sum" "$here/build.sh" | sha256sum | cut -c1-16)
dir=$cache/$hash

complete() {
	[ -x "$1/controller" ] && [ -x "$1/speaker" ] && [ -s "$1/VERSION" ] &&
		compgen -G "$1/crds/*.yaml" >/dev/null
}

if complete "$dir"; then
	echo "$dir" >&3
	exit 0
fi

mkdir -p "$cache"
# One build at a time; the second finds the first's result once it has
# the lock.
exec 9>"$cache/.lock"
flock 9
if complete "$dir"; then
	echo "$dir" >&3
	exit 0
fi

cd "$here"
export GOWORK=off CGO_ENABLED=0
mod=go.universe.tf/metallb
version=$("$go" list -m -f '{{.Version}}' "$mod")
src=$("$go" list -m -f '{{.Dir}}' "$mod")
if [ -z "$src" ]; then
	"$go" mod download "$mod"
	src=$("$go" list -m -f '{{.Dir}}' "$mod")
fi

tmp=$(mktemp -d "$cache/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
echo "metallb: building MetalLB $version controller and speaker into $dir" >&2
"$go" build -o "$tmp/" "$mod/controller" "$mod/speaker"
mkdir "$tmp/crds"
cp "$src"/config/crd/bases/*.yaml "$tmp/crds/"
chmod -R u+w "$tmp/crds" # the module cache is read-only
# MetalLB's CRDs give 4-byte ASNs (myASN, peerASN) `format: int32` with
# `maximum: 4294967295`; kube-apiserver 1.37 refuses such a schema at
# every write ("Maximum boundary value must be of type integer with format
# int32"). int64 holds every ASN and is what the bound means.
sed -i '/format: int32/{N;s/format: int32\(\n *maximum: 4294967295\)/format: int64\1/}' "$tmp"/crds/*.yaml
echo "MetalLB $version" >"$tmp/VERSION"
chmod 755 "$tmp" # mktemp made it 0700; tests may run as another user
rm -rf "$dir" # a partial directory left by hand; ours are never partial
mv -T "$tmp" "$dir"
echo "metallb: done" >&2
echo "$dir" >&3
