#!/usr/bin/env bash
# build.sh prints a directory holding kube-apiserver, kubectl and etcd for
# vipd's Kubernetes tests (VIPD_KUBE_ASSETS), building it first if needed.
#
# kube-apiserver and kubectl are built from this module (the version its
# go.mod requires); etcd is Debian's etcd-server, installed with apt if
# missing. The directory is named after a hash of go.mod, go.sum and this
# script, so a version bump builds anew and anything else reuses the cache:
#
#   ${VIPD_KUBE_ASSETS_CACHE:-/var/cache/vipd/kube-assets}/<hash>/
#
# A cold build takes about 8-10 minutes and 3 GB of memory on two cores.
# Only the directory goes to stdout; progress goes to stderr.
set -euo pipefail

exec 3>&1 1>&2 # stdout is for the answer alone

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${VIPD_KUBE_ASSETS_CACHE:-/var/cache/vipd/kube-assets}
go=${GO:-go}
etcd=/usr/bin/etcd

hash=$(cat "$here/go.mod" "$here/go.sum" "$here/build.sh" | sha256sum | cut -c1-16)
dir=$cache/$hash

complete() {
	[ -x "$1/kube-apiserver" ] && [ -x "$1/kubectl" ] && [ -x "$1/etcd" ]
}

# install_etcd installs Debian's etcd-server with its service kept from
# starting (a policy-rc.d that says no, as the Makefile's apt-install does):
# the tests run their own etcd.
install_etcd() {
	echo "kubeassets: installing etcd-server with apt" >&2
	local p=/usr/sbin/policy-rc.d ours=
	if [ ! -e "$p" ]; then
		printf '#!/bin/sh\nexit 101\n' >"$p"
		chmod +x "$p"
		ours=1
	fi
	local rc=0
	{ apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends etcd-server; } || rc=$?
	[ -z "$ours" ] || rm -f "$p"
	return "$rc"
}

if complete "$dir"; then
	echo "$dir" >&3
	exit 0
fi

[ -x "$etcd" ] || install_etcd
[ -x "$etcd" ] || { echo "kubeassets: $etcd missing after installing etcd-server" >&2; exit 1; }

mkdir -p "$cache"
# One build at a time: two would fight over two cores and 6 GB of memory,
# and the second would find the first's result once it has the lock.
exec 9>"$cache/.lock"
flock 9
if complete "$dir"; then
	echo "$dir" >&3
	exit 0
fi

cd "$here"
export GOWORK=off CGO_ENABLED=0
version=$("$go" list -m -f '{{.Version}}' k8s.io/kubernetes)
major=${version#v}
major=${major%%.*}
minor=${version#v*.}
minor=${minor%%.*}
# Without these the binaries say v0.0.0. kubectl reports its own version
# from client-go's copy of the variables, the server from component-base's.
ldflags=
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	ldflags+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
done

tmp=$(mktemp -d "$cache/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
echo "kubeassets: building kube-apiserver and kubectl $version into $dir (first time: about 8-10 minutes)" >&2
"$go" build -ldflags "$ldflags" -o "$tmp/" \
	k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kubectl
ln -s "$etcd" "$tmp/etcd"
chmod 755 "$tmp" # mktemp made it 0700; tests may run as another user
rm -rf "$dir" # a partial directory left by hand; ours are never partial
mv -T "$tmp" "$dir"
echo "kubeassets: done" >&2
echo "$dir" >&3
