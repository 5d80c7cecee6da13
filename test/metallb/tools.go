//go:build tools

// Package metallb pins the commands build.sh builds, so that go.mod and
// go.sum hold all they need; the build tag keeps it out of every build.
package metallb

import (
	_ "go.universe.tf/metallb/controller"
	_ "go.universe.tf/metallb/speaker"
)
