package worldtest

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/vipd/vipd/internal/testnet/kubeapi"
)

// AssetsEnv names the directory holding kube-apiserver, kubectl and etcd.
// `make test` sets it from test/kubeassets/build.sh.
const AssetsEnv = "VIPD_KUBE_ASSETS"

// kubeAPITimeout bounds starting a control plane; it takes 3-5 s.
const kubeAPITimeout = 2 * time.Minute

// KubeAPI starts a Kubernetes control plane (etcd and kube-apiserver) for
// a test and stops it when the test ends, printing the tail of both logs
// if the test failed. Without VIPD_KUBE_ASSETS the test is skipped, or
// fails where everything should be there (see SkipOrFail); in -short mode
// it is skipped.
func KubeAPI(t testing.TB) *kubeapi.ControlPlane {
	t.Helper()
	if testing.Short() {
		t.Skip("kubeapi: skipped in -short mode")
	}
	assets := os.Getenv(AssetsEnv)
	if assets == "" {
		SkipOrFail(t, "kubeapi: "+AssetsEnv+" is unset: run make test, or set it to the directory test/kubeassets/build.sh prints")
	}
	ctx, cancel := context.WithTimeout(context.Background(), kubeAPITimeout)
	defer cancel()
	cp, err := kubeapi.Start(ctx, kubeapi.Options{AssetsDir: assets, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("kubeapi logs:\n%s", cp.LogTails(logTailLines))
		}
		if err := cp.Close(); err != nil {
			t.Errorf("%v", err)
		}
	})
	return cp
}
