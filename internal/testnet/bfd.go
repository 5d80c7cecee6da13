package testnet

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"text/template"
	"time"
)

// BFD defaults, as vipd's (SPEC §2).
const (
	defaultBFDInterval   = 300 * time.Millisecond
	defaultBFDMultiplier = 3
)

// withDefaults returns the spec with zero fields filled in.
func (b BFDSpec) withDefaults() BFDSpec {
	if b.MinTx == 0 {
		b.MinTx = defaultBFDInterval
	}
	if b.MinRx == 0 {
		b.MinRx = defaultBFDInterval
	}
	if b.Multiplier == 0 {
		b.Multiplier = defaultBFDMultiplier
	}
	return b
}

// validate accepts what both daemons can configure for neighbour n:
// whole milliseconds from 10 ms to 60 s (FRR's range), a multiplier of 2
// to 255, and the BGP session's mode, which both run BGP's BFD session in.
func (b BFDSpec) validate(n Neighbor) error {
	var errs []error
	if b.Multihop != n.Multihop {
		errs = append(errs, fmt.Errorf("bfd multihop %t differs from the BGP session's multihop %t", b.Multihop, n.Multihop))
	}
	for _, d := range []struct {
		name  string
		value time.Duration
	}{{"min tx", b.MinTx}, {"min rx", b.MinRx}} {
		if d.value < 10*time.Millisecond || d.value > time.Minute || d.value%time.Millisecond != 0 {
			errs = append(errs, fmt.Errorf("bfd %s %v: want whole milliseconds from 10ms to 60s", d.name, d.value))
		}
	}
	if b.Multiplier < 2 || b.Multiplier > 255 {
		errs = append(errs, fmt.Errorf("bfd multiplier %d: want 2 to 255", b.Multiplier))
	}
	return errors.Join(errs...)
}

// bfdLocal is the router's source address for a multihop BFD session with
// neighbor: its peer address if it has one of neighbor's family, else its
// LAN address of that family.
func bfdLocal(h *Host, spec RouterSpec, neighbor netip.Addr) netip.Addr {
	if spec.PeerAddress.IsValid() && spec.PeerAddress.Is4() == neighbor.Is4() {
		return spec.PeerAddress
	}
	if neighbor.Is4() {
		return h.addr4
	}
	return h.addr6
}

// BFDSessions returns the router's BFD sessions.
func (r *Router) BFDSessions(ctx context.Context) ([]BFDSession, error) {
	sessions, err := r.daemon.bfdSessions(ctx)
	if err != nil {
		return nil, fmt.Errorf("router %s: bfd sessions: %w", r.name, err)
	}
	return sessions, nil
}

// BFDSession returns the router's BFD session with neighbor in the given
// mode; ok is false if the router has none.
func (r *Router) BFDSession(ctx context.Context, neighbor netip.Addr, multihop bool) (s BFDSession, ok bool, err error) {
	sessions, err := r.BFDSessions(ctx)
	if err != nil {
		return BFDSession{}, false, err
	}
	for _, s := range sessions {
		if s.Neighbor == neighbor && s.Multihop == multihop {
			return s, true, nil
		}
	}
	return BFDSession{}, false, nil
}

// WaitBFD waits up to timeout until the router's BFD session with neighbor
// in the given mode is in state (BFDUp, "Down", ...), and returns it.
func (r *Router) WaitBFD(ctx context.Context, neighbor netip.Addr, multihop bool, state string, timeout time.Duration) (BFDSession, error) {
	var got BFDSession
	err := WaitFor(ctx, timeout, func(ctx context.Context) error {
		s, ok, err := r.BFDSession(ctx, neighbor, multihop)
		switch {
		case err != nil:
			return err
		case !ok:
			return fmt.Errorf("no bfd session with %s (multihop %t)", neighbor, multihop)
		case s.State != state:
			return fmt.Errorf("bfd session with %s (multihop %t) is %s, want %s", neighbor, multihop, s.State, state)
		}
		got = s
		return nil
	})
	if err != nil {
		return got, fmt.Errorf("router %s: %w", r.name, err)
	}
	return got, nil
}

// birdBFDData is the `protocol bfd` of a BIRD router. BIRD sets timers
// per interface and for all multihop sessions, so a router's single-hop
// neighbours must agree on timers, and so must its multihop ones.
type birdBFDData struct {
	Direct    *BFDSpec
	Multihop  *BFDSpec
	Neighbors []birdBFDNeighbor
}

type birdBFDNeighbor struct {
	Address netip.Addr
	Local   netip.Addr // multihop only
}

// newBirdBFD collects the BFD neighbours of spec; nil if there are none.
func newBirdBFD(h *Host, spec RouterSpec) (*birdBFDData, error) {
	var data birdBFDData
	for _, n := range spec.Neighbors {
		if n.BFD == nil {
			continue
		}
		b := n.BFD.withDefaults()
		if err := b.validate(n); err != nil {
			return nil, fmt.Errorf("neighbor %s: %w", n.Address, err)
		}
		group, nb := &data.Direct, birdBFDNeighbor{Address: n.Address}
		if b.Multihop {
			group, nb.Local = &data.Multihop, bfdLocal(h, spec, n.Address)
		}
		b.Graceful = false // a BGP option, not a timer
		if *group != nil && !sameBIRDGroup(**group, b) {
			return nil, fmt.Errorf("neighbor %s: BIRD needs the same bfd timers and authentication for all %s neighbours", n.Address, birdBFDMode(b.Multihop))
		}
		*group = &b
		data.Neighbors = append(data.Neighbors, nb)
	}
	if len(data.Neighbors) == 0 {
		return nil, nil
	}
	return &data, nil
}

// sameBIRDGroup reports whether two neighbours can share BIRD's per-mode
// BFD options: the same timers and authentication.
func sameBIRDGroup(a, b BFDSpec) bool {
	authA, authB := a.Auth, b.Auth
	a.Auth, b.Auth = nil, nil
	return a == b && (authA == nil) == (authB == nil) && (authA == nil || *authA == *authB)
}

func birdBFDMode(multihop bool) string {
	if multihop {
		return "multihop"
	}
	return "single-hop"
}

// birdBFDTemplate renders birdBFDData; intervals in microseconds.
const birdBFDTemplate = `{{define "bfd timers"}} { min rx interval {{micros .MinRx}} us; min tx interval {{micros .MinTx}} us; multiplier {{.Multiplier}};
{{- with .Auth}} authentication {{.Type}}; password "{{.Key}}" { id {{.KeyID}}; };{{end}} }{{end}}
{{- define "bfd"}}
protocol bfd {
{{- with .Direct}}
	interface "*"{{template "bfd timers" .}};
{{- end}}
{{- with .Multihop}}
	multihop{{template "bfd timers" .}};
{{- end}}
{{- range .Neighbors}}
	neighbor {{.Address}}{{if .Local.IsValid}} local {{.Local}} multihop on{{end}};
{{- end}}
}
{{end}}`

var templateFuncs = template.FuncMap{
	// hosts lists the first n addresses of 100.64.0.0/10.
	"hosts": func(n int) []netip.Addr {
		out := make([]netip.Addr, 0, n)
		for a := netip.MustParseAddr("100.64.0.0"); len(out) < n; a = a.Next() {
			out = append(out, a)
		}
		return out
	},
	"micros": func(d time.Duration) int64 { return d.Microseconds() },
	"millis": func(d time.Duration) int64 { return d.Milliseconds() },
}

// frrBFDData is bfdd's config: one profile and one peer per BFD neighbour.
type frrBFDData struct {
	Name  string
	Peers []frrBFDPeer
}

type frrBFDPeer struct {
	Profile  string
	Address  netip.Addr
	Local    netip.Addr
	BFD      BFDSpec
	Multihop bool
}

// newFRRBFD collects spec's BFD neighbours for bfdd.
func newFRRBFD(h *Host, spec RouterSpec) (frrBFDData, error) {
	data := frrBFDData{Name: spec.Name}
	for i, n := range spec.Neighbors {
		if n.BFD == nil {
			continue
		}
		b := n.BFD.withDefaults()
		if err := b.validate(n); err != nil {
			return data, fmt.Errorf("neighbor %s: %w", n.Address, err)
		}
		if b.Auth != nil {
			return data, fmt.Errorf("neighbor %s: FRR's bfdd has no BFD authentication", n.Address)
		}
		local := h.addr4
		if !n.Address.Is4() {
			local = h.addr6
		}
		if b.Multihop {
			local = bfdLocal(h, spec, n.Address)
		}
		data.Peers = append(data.Peers, frrBFDPeer{
			Profile: frrBFDProfile(i), Address: n.Address, Local: local, BFD: b, Multihop: b.Multihop,
		})
	}
	return data, nil
}

// frrBFDProfile names the bfdd profile of the i-th neighbour.
func frrBFDProfile(i int) string { return fmt.Sprintf("nbr%d", i+1) }

// frrBFDTemplate is bfdd's config.
var frrBFDTemplate = template.Must(template.New("frr bfdd").Funcs(templateFuncs).Parse(`hostname {{.Name}}
bfd
{{- range .Peers}}
 profile {{.Profile}}
  receive-interval {{millis .BFD.MinRx}}
  transmit-interval {{millis .BFD.MinTx}}
  detect-multiplier {{.BFD.Multiplier}}
 exit
 peer {{.Address}}{{if .Multihop}} multihop{{end}} local-address {{.Local}}
  profile {{.Profile}}
 exit
{{- end}}
exit
`))
