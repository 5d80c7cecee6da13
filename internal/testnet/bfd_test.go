package testnet

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// bfdSpec is a router with three BFD neighbours: single-hop IPv4 and
// IPv6, and multihop IPv4.
func bfdSpec(kind RouterKind) RouterSpec {
	return RouterSpec{
		Name: "r1", Kind: kind, ASN: 64700, Address: addr("10.255.255.1"),
		Neighbors: []Neighbor{
			{Address: n1v4, ASN: nodeASN, BFD: &BFDSpec{}},
			{Address: n1v6, ASN: nodeASN, BFD: &BFDSpec{}},
			{Address: n2v4, ASN: nodeASN, Multihop: true, BFD: &BFDSpec{Multihop: true, MinTx: 200 * time.Millisecond, Graceful: true}},
		},
	}
}

// nrecSpec is a route server that peers multihop from its peer address,
// with BFD like NREC's: `multihop; bfd graceful;`.
func nrecSpec(kind RouterKind) RouterSpec {
	return RouterSpec{
		Name: "r1", Kind: kind, ASN: 64700, Address: addr("10.255.255.1"), PeerAddress: addr("169.254.169.254"),
		Neighbors: []Neighbor{{Address: n1v4, ASN: nodeASN, Multihop: true, BFD: &BFDSpec{Multihop: true, Graceful: true}}},
	}
}

// bfdRouterHost is a router's host as the config renderers see it.
func bfdRouterHost(t *testing.T) *Host {
	return &Host{name: "r1", dir: t.TempDir(), addr4: addr("10.255.255.1"), addr6: addr("fd00:255::1")}
}

func TestBirdBFDConfig(t *testing.T) {
	d, err := newBirdRouter(bfdRouterHost(t), bfdSpec(BIRD))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.prepare(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(d.conf)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		"protocol bfd {",
		"\tinterface \"*\" { min rx interval 300000 us; min tx interval 300000 us; multiplier 3; };",
		"\tmultihop { min rx interval 300000 us; min tx interval 200000 us; multiplier 3; };",
		"\tneighbor 10.255.255.11;",
		"\tneighbor fd00:255::b;",
		"\tneighbor 10.255.255.12 local 10.255.255.1 multihop on;",
		"\tbfd on;",
		"\tbfd graceful;",
		// BIRD refuses multihop BGP with BFD and no local address.
		"\tlocal 10.255.255.1 as 64700;",
	} {
		if !strings.Contains(string(b), line+"\n") {
			t.Errorf("config lacks %q:\n%s", line, b)
		}
	}
	if _, err := exec.LookPath("bird"); err != nil {
		skipUnlessCI(t, "needs bird")
	}
	if out, err := exec.Command("bird", "-p", "-c", d.conf).CombinedOutput(); err != nil {
		t.Errorf("bird -p: %v\n%s\n%s", err, out, b)
	}
}

func TestBFDFromPeerAddress(t *testing.T) {
	d, err := newBirdRouter(bfdRouterHost(t), nrecSpec(BIRD))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.prepare(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(d.conf)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"\tlocal 169.254.169.254 as 64700;", "\tneighbor 10.255.255.11 local 169.254.169.254 multihop on;", "\tbfd graceful;"} {
		if !strings.Contains(string(b), line+"\n") {
			t.Errorf("BIRD config lacks %q:\n%s", line, b)
		}
	}
	data, err := newFRRBFD(bfdRouterHost(t), nrecSpec(FRR))
	if err != nil {
		t.Fatal(err)
	}
	got, err := render(frrBFDTemplate, data)
	if err != nil {
		t.Fatal(err)
	}
	if line := " peer 10.255.255.11 multihop local-address 169.254.169.254\n"; !strings.Contains(got, line) {
		t.Errorf("bfdd config lacks %q:\n%s", line, got)
	}
}

func TestFRRBFDConfig(t *testing.T) {
	spec := bfdSpec(FRR)
	data, err := newFRRBFD(bfdRouterHost(t), spec)
	if err != nil {
		t.Fatal(err)
	}
	got, err := render(frrBFDTemplate, data)
	if err != nil {
		t.Fatal(err)
	}
	want := `hostname r1
bfd
 profile nbr1
  receive-interval 300
  transmit-interval 300
  detect-multiplier 3
 exit
 peer 10.255.255.11 local-address 10.255.255.1
  profile nbr1
 exit
 profile nbr2
  receive-interval 300
  transmit-interval 300
  detect-multiplier 3
 exit
 peer fd00:255::b local-address fd00:255::1
  profile nbr2
 exit
 profile nbr3
  receive-interval 300
  transmit-interval 200
  detect-multiplier 3
 exit
 peer 10.255.255.12 multihop local-address 10.255.255.1
  profile nbr3
 exit
exit
`
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("bfdd config (-want +got):\n%s", diff)
	}
	checkFRRConfig(t, "bfdd", got)

	bgpd, err := render(frrBGPTemplate, frrBGPData{RouterSpec: spec, Families: []string{"ipv4"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{" neighbor 10.255.255.11 bfd", " neighbor 10.255.255.11 bfd profile nbr1", " neighbor 10.255.255.12 bfd profile nbr3"} {
		if !strings.Contains(bgpd, line+"\n") {
			t.Errorf("bgpd config lacks %q:\n%s", line, bgpd)
		}
	}
	checkFRRConfig(t, "bgpd", bgpd)
}

func TestBFDSpecRejected(t *testing.T) {
	tests := []struct {
		name   string
		kind   RouterKind
		change func(s *RouterSpec)
		want   string
	}{
		{"sub-millisecond", FRR, func(s *RouterSpec) { s.Neighbors[0].BFD.MinRx = 1500 * time.Microsecond }, "whole milliseconds"},
		{"too fast", BIRD, func(s *RouterSpec) { s.Neighbors[0].BFD.MinTx = 5 * time.Millisecond }, "whole milliseconds"},
		{"multiplier", FRR, func(s *RouterSpec) { s.Neighbors[2].BFD.Multiplier = 1 }, "multiplier 1"},
		{"bird timers differ", BIRD, func(s *RouterSpec) { s.Neighbors[1].BFD.MinTx = time.Second }, "same bfd timers"},
		{"mode differs from BGP", FRR, func(s *RouterSpec) { s.Neighbors[0].BFD.Multihop = true }, "differs from the BGP session"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := bfdSpec(tt.kind)
			for i := range spec.Neighbors { // no sharing between cases
				b := *spec.Neighbors[i].BFD
				spec.Neighbors[i].BFD = &b
			}
			tt.change(&spec)
			var err error
			if tt.kind == BIRD {
				_, err = newBirdBFD(bfdRouterHost(t), spec)
			} else {
				_, err = newFRRBFD(bfdRouterHost(t), spec)
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one with %q", err, tt.want)
			}
		})
	}
}

func TestParseBirdBFD(t *testing.T) {
	out, err := os.ReadFile("testdata/bird_bfd_sessions.txt")
	if err != nil {
		t.Fatal(err)
	}
	got, err := parseBirdBFD(string(out))
	if err != nil {
		t.Fatal(err)
	}
	at := func(s string) time.Time {
		ts, err := time.ParseInLocation(birdTimeLayout, s, time.Local)
		if err != nil {
			t.Fatal(err)
		}
		return ts
	}
	want := []BFDSession{
		{Neighbor: n1v6, State: "Down", Since: at("2026-11-22 21:10:22"), TxInterval: time.Second},
		{Neighbor: n1v4, State: "Down", Since: at("2026-11-22 21:10:22"), TxInterval: time.Second},
		{Neighbor: n2v4, Multihop: true, State: BFDUp, Since: at("2026-11-22 21:10:20"), TxInterval: 300 * time.Millisecond, DetectionTime: 900 * time.Millisecond},
		{Neighbor: n2v6, Multihop: true, State: BFDUp, Since: at("2026-11-22 21:10:21"), TxInterval: 300 * time.Millisecond, DetectionTime: 900 * time.Millisecond},
	}
	if diff := cmp.Diff(want, got, addrCmp); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestParseFRRBFD(t *testing.T) {
	now := time.Date(2026, 11, 22, 21, 10, 30, 500, time.UTC)
	tests := []struct {
		file string
		want []BFDSession
	}{
		{"testdata/frr_bfd_peers.json", []BFDSession{
			{Neighbor: n1v4, State: "Down", Since: now.Add(-time.Second).Truncate(time.Second), TxInterval: 300 * time.Millisecond, DetectionTime: 900 * time.Millisecond, RemoteDiag: "administratively down"},
			{Neighbor: n2v4, Multihop: true, State: BFDUp, Since: now.Add(-3 * time.Second).Truncate(time.Second), TxInterval: 300 * time.Millisecond, DetectionTime: 900 * time.Millisecond, RemoteDiag: "ok"},
			{Neighbor: n1v6, State: "Down", Since: now.Add(-time.Second).Truncate(time.Second), TxInterval: 300 * time.Millisecond, DetectionTime: 900 * time.Millisecond, RemoteDiag: "administratively down"},
			{Neighbor: n2v6, Multihop: true, State: BFDUp, Since: now.Add(-3 * time.Second).Truncate(time.Second), TxInterval: 300 * time.Millisecond, DetectionTime: 900 * time.Millisecond, RemoteDiag: "ok"},
		}},
		{"testdata/frr_bfd_shutdown.json", nil},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			data, err := os.ReadFile(tt.file)
			if err != nil {
				t.Fatal(err)
			}
			got, err := parseFRRBFD(data, now)
			if err != nil {
				t.Fatal(err)
			}
			if tt.want == nil {
				// A shut down peer: AdminDown with no since, and the
				// remote's 1 s while it is not Up.
				if got[0].State != "AdminDown" || !got[0].Since.IsZero() || got[0].DetectionTime != 3*time.Second {
					t.Errorf("shut down peer %+v", got[0])
				}
				return
			}
			if diff := cmp.Diff(tt.want, got, addrCmp); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseFRRBFDRejects(t *testing.T) {
	for _, data := range []string{`{}`, `[{"peer":"x","status":"up"}]`, `[{"peer":"10.0.0.1","status":"sleepy"}]`} {
		if _, err := parseFRRBFD([]byte(data), time.Now()); err == nil {
			t.Errorf("%s: no error", data)
		}
	}
}
