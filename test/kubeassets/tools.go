//go:build tools

// Package kubeassets pins the commands build.sh builds, so that go.mod and
// go.sum hold all they need; the build tag keeps it out of every build.
package kubeassets

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
