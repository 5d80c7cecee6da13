package testnet

import "net/netip"

// Values shared by the package's internal tests. world_test.go, an
// external test, has its own.
const (
	nodeASN  = 4200000000
	password = "s3cret"
)

var (
	vip4 = netip.MustParsePrefix("192.168.0.16/32")
	vip6 = netip.MustParsePrefix("fda4:5ff2:8477:1755::/128")
)

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

// For world_test.go, an external test.
var (
	FRRRunDir  = frrRunDir
	FRRDaemons = frrDaemons
	Run        = run
)
