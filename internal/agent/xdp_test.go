package agent

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vipd/vipd/internal/dataplane/xdp"
	"github.com/vipd/vipd/internal/lb"
)

// fakeXDP records the dsr load balancers it is given: "xdp +lb ADDRESS
// [backend=MAC ...]" and "xdp -lb ADDRESS", and "xdp close".
type fakeXDP struct {
	rec  *recorder
	mu   sync.Mutex
	have map[string]string
	fail error
}

func (f *fakeXDP) Set(_ context.Context, s xdp.State) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return f.fail
	}
	want := map[string]string{}
	for _, l := range s.LoadBalancers {
		var bs []string
		for _, b := range l.Backends {
			bs = append(bs, fmt.Sprintf("%s=%s", b.Addr, b.MAC))
		}
		want[l.Address.String()] = strings.Join(bs, " ")
	}
	for k := range f.have {
		if _, ok := want[k]; !ok {
			f.rec.add("xdp -lb %s", k)
		}
	}
	for k, v := range want {
		if f.have[k] != v || f.have == nil {
			f.rec.add("xdp +lb %s [%s] on %s", k, v, strings.Join(s.Interfaces, ","))
		}
	}
	f.have = want
	return nil
}

func (f *fakeXDP) Interfaces() []xdp.InterfaceStatus {
	return []xdp.InterfaceStatus{{Name: "lo", Mode: xdp.Native}}
}

func (f *fakeXDP) Counters() (map[string]xdp.Counter, error) { return nil, nil }

func (f *fakeXDP) Close() error {
	f.rec.add("xdp close")
	return nil
}

func (f *fakeXDP) setFail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = err
}

// backendMAC is what the fake resolver answers for 10.0.0.5; 10.0.0.6
// never answers.
var backendMAC = net.HardwareAddr{2, 0, 0, 0, 0, 5}

func fakeResolve(_ context.Context, addrs []netip.Addr, _ time.Duration) (map[netip.Addr]xdp.Neighbor, map[netip.Addr]error) {
	found, failed := map[netip.Addr]xdp.Neighbor{}, map[netip.Addr]error{}
	for _, a := range addrs {
		if a == netip.MustParseAddr("10.0.0.5") {
			found[a] = xdp.Neighbor{MAC: backendMAC, Ifindex: 1} // lo
		} else {
			failed[a] = xdp.ErrUnresolved
		}
	}
	return found, failed
}

const xdpTestConfig = testConfig + "dataplane: {xdp: {interfaces: [lo]}}\n"

func newXDPHarness(t *testing.T) (*harness, *fakeXDP) {
	h := newHarness(t, xdpTestConfig)
	fx := &fakeXDP{rec: h.rec}
	h.act.newXDP = func(*slog.Logger) (XDPPlane, error) { return fx, nil }
	h.act.resolve = fakeResolve
	return h, fx
}

func createDSR(t *testing.T, h *harness, backends ...string) (id string, addr netip.Addr) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	l, _, err := h.CreateLoadBalancer(ctx, lb.Spec{Name: "dsr", Port: 80, Mode: lb.ModeDSR})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range backends {
		if _, err := h.AddBackend(ctx, l.UUID, lb.BackendSpec{IP: netip.MustParseAddr(b)}); err != nil {
			t.Fatal(err)
		}
	}
	return l.UUID, netip.MustParseAddr(l.EIP)
}

// TestDSRGoesToXDP: a dsr load balancer is programmed into the XDP data
// plane with its backend's MAC, not into nftables, before its address is
// bound and announced with it; on shutdown the program goes after the withdrawal.
func TestDSRGoesToXDP(t *testing.T) {
	h, _ := newXDPHarness(t)
	h.start(t)
	mark := h.rec.mark()
	id, addr := createDSR(t, h, "10.0.0.5")
	events := h.rec.waitFor(t, mark, "announce "+addr.String()+"/32")
	want := fmt.Sprintf("xdp +lb %s [10.0.0.5:80=%s] on lo", addr, backendMAC)
	before(t, events, "xdp +lb "+addr.String(), "bind "+addr.String())
	before(t, events, want, "announce "+addr.String()+"/32")
	if i := find(events, "rules +lb "+addr.String()); i >= 0 {
		t.Errorf("the dsr load balancer went to nftables too:\n  %s", strings.Join(events, "\n  "))
	}
	l, err := h.LoadBalancer(id)
	if err != nil || len(l.Backends) != 1 || l.Backends[0].State != string(lb.BackendUp) || !l.Announced {
		t.Errorf("load balancer %+v (%v): want announced with its backend up", l, err)
	}
	st := h.Status().XDP
	if st == nil || len(st.Backends) != 1 || st.Backends[0].MAC != backendMAC.String() || st.Backends[0].Interface != "lo" {
		t.Errorf("status xdp: %+v, want the backend's MAC on lo", st)
	}

	mark = h.rec.mark()
	if err := h.stop(t); err != nil {
		t.Fatal(err)
	}
	events, _ = h.rec.snapshot()
	before(t, events[mark:], "bgp stop", "xdp close") // the speaker's Stop withdraws
}

// TestDSRUnresolvedBackend: a healthy backend whose MAC cannot be found
// gets no flows, status says why, and a load balancer with no other is
// not announced.
func TestDSRUnresolvedBackend(t *testing.T) {
	h, _ := newXDPHarness(t)
	h.start(t)
	id, addr := createDSR(t, h, "10.0.0.6")
	h.pass(t)
	if v := vipStatus(t, h, addr); v.Announced || v.ReasonCode != string(ReasonNoBackend) {
		t.Errorf("status of %s: announced %v, reason %q; want withdrawn, %s", addr, v.Announced, v.ReasonCode, ReasonNoBackend)
	}
	st := h.Status().XDP
	if st == nil || len(st.Backends) != 1 || !strings.Contains(st.Backends[0].Problem, "no answer") {
		t.Errorf("status xdp: %+v, want the backend with its problem", st)
	}
	if l, _ := h.LoadBalancer(id); l.Backends[0].State == string(lb.BackendUp) {
		t.Errorf("unresolved backend shown up: %+v", l.Backends[0])
	}
}

// TestXDPFailureWithdrawsOnlyDSR: when the XDP data plane fails, the dsr
// load balancer is withdrawn with reason xdp_failed (no fallback), a nat
// one stays, and the dsr one returns once XDP works again.
func TestXDPFailureWithdrawsOnlyDSR(t *testing.T) {
	h, fx := newXDPHarness(t)
	h.start(t)
	_, natAddr := createLB(t, h)
	fx.setFail(errInjected)
	mark := h.rec.mark()
	_, addr := createDSR(t, h, "10.0.0.5")
	h.pass(t)
	if v := vipStatus(t, h, addr); v.Announced || v.ReasonCode != string(ReasonNoXDP) {
		t.Errorf("status of %s: announced %v, reason %q; want withdrawn, %s", addr, v.Announced, v.ReasonCode, ReasonNoXDP)
	}
	if v := vipStatus(t, h, natAddr); !v.Announced {
		t.Errorf("the nat load balancer %s was withdrawn: %+v", natAddr, v)
	}
	if st := h.Status().XDP; st == nil || !strings.Contains(st.Error, errInjected.Error()) {
		t.Errorf("status xdp: %+v, want the error", st)
	}
	fx.setFail(nil)
	events := h.rec.waitFor(t, mark, "announce "+addr.String()+"/32")
	before(t, events, "xdp +lb "+addr.String(), "announce "+addr.String()+"/32")
}

// TestDrainLoadBalancer: `vipd drain lb/NAME` withdraws the address while
// the data plane keeps forwarding; undrain announces it again.
func TestDrainLoadBalancer(t *testing.T) {
	h, _ := newXDPHarness(t)
	h.start(t)
	_, addr := createDSR(t, h, "10.0.0.5")
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	mark := h.rec.mark()
	if err := h.Drain(ctx, "lb/dsr"); err != nil {
		t.Fatal(err)
	}
	events := h.rec.waitFor(t, mark, "withdraw "+addr.String()+"/32")
	if v := vipStatus(t, h, addr); v.Announced || v.ReasonCode != string(ReasonDrained) {
		t.Errorf("drained: %+v, want withdrawn, %s", v, ReasonDrained)
	}
	if find(events, "xdp -lb "+addr.String()) >= 0 || find(events, "unbind "+addr.String()) >= 0 {
		t.Errorf("a drain removed the data plane or the address:\n  %s", strings.Join(events, "\n  "))
	}
	mark = h.rec.mark()
	if err := h.Undrain(ctx, "lb/dsr"); err != nil {
		t.Fatal(err)
	}
	h.rec.waitFor(t, mark, "announce "+addr.String()+"/32")
	if err := h.Drain(ctx, "lb/nope"); err == nil {
		t.Error("drain of an unknown load balancer succeeded")
	}
}

// TestXDPInterfacesReload: a reload that moves the program to another
// interface reprograms it there, and a backend that the new interface
// does not reach leaves the table, with status saying why.
func TestXDPInterfacesReload(t *testing.T) {
	h, _ := newXDPHarness(t)
	h.start(t)
	_, addr := createDSR(t, h, "10.0.0.5")
	mark := h.rec.mark()
	if err := h.reloadWith(t, testConfig+"dataplane: {xdp: {interfaces: [nope0]}}\n"); err != nil {
		t.Fatal(err)
	}
	events := h.rec.waitFor(t, mark, fmt.Sprintf("xdp +lb %s [] on nope0", addr))
	if find(events, "withdraw "+addr.String()+"/32") < 0 {
		h.rec.waitFor(t, mark, "withdraw "+addr.String()+"/32")
	}
	st := h.Status().XDP
	if st == nil || len(st.Backends) != 1 || !strings.Contains(st.Backends[0].Problem, "does not run") {
		t.Errorf("status xdp: %+v, want the backend's problem", st)
	}
}
