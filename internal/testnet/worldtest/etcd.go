package worldtest

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/vipd/vipd/internal/testnet"
	"github.com/vipd/vipd/internal/testnet/etcd"
)

// etcdTimeout bounds starting a cluster; it takes 2-3 s.
const etcdTimeout = 2 * time.Minute

// Etcd starts an etcd cluster with one member on each of hosts, or, with
// no hosts, on the members etcd.AddMembers put in w's spec, and stops it
// when the test ends, printing the tail of every member's log if the test
// failed. The data dirs live in the test's temp dir. In -short mode the
// test is skipped; without etcd (or nft, which Partition needs) it is
// skipped, or fails where everything should be there (see SkipOrFail).
func Etcd(t testing.TB, w *testnet.World, hosts ...*testnet.Host) *etcd.Cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("etcd: skipped in -short mode")
	}
	if _, err := os.Stat(etcd.Binary); err != nil {
		SkipOrFail(t, "etcd: needs "+etcd.Binary+" (apt-get install etcd-server): "+err.Error())
	}
	if _, err := exec.LookPath("nft"); err != nil {
		SkipOrFail(t, "etcd: needs nft (apt-get install nftables): "+err.Error())
	}
	if len(hosts) == 0 {
		var err error
		if hosts, err = etcd.MemberHosts(w); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), etcdTimeout)
	defer cancel()
	// TempDir before Cleanup: the cluster stops before its data dirs go.
	c, err := etcd.Start(ctx, hosts, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("etcd logs:\n%s", c.LogTails(logTailLines))
		}
		if err := c.Close(); err != nil {
			t.Errorf("%v", err)
		}
	})
	return c
}
