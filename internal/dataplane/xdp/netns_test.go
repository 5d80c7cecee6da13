package xdp

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/vishvananda/netlink"

	"github.com/vipd/vipd/internal/testnet"
	"github.com/vipd/vipd/internal/testnet/worldtest"
)

// twoHosts is a LAN with hosts h1 and h2, nothing else.
func twoHosts(t *testing.T) *testnet.World {
	return worldtest.New(t, testnet.Spec{Hosts: []testnet.NodeSpec{
		{Name: "h1", Address: netip.MustParseAddr("10.255.255.11")},
		{Name: "h2", Address: netip.MustParseAddr("10.255.255.12")},
	}})
}

func lanMAC(t *testing.T, h *testnet.Host) string {
	t.Helper()
	out, err := h.Exec(context.Background(), "cat", "/sys/class/net/"+testnet.LANInterface+"/address")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(out)
}

// TestResolve: a neighbour this host never talked to is resolved over
// ARP and over neighbour discovery; one that does not answer, one behind
// a gateway and the host's own address are not.
func TestResolve(t *testing.T) {
	w := twoHosts(t)
	h1, h2 := w.Hosts()[0], w.Hosts()[1]
	ctx := context.Background()
	if _, err := h1.Exec(ctx, "ip", "route", "add", "192.0.2.0/24", "via", h2.Addr4().String()); err != nil {
		t.Fatal(err)
	}
	silent := netip.MustParseAddr("10.255.255.99")
	routed := netip.MustParseAddr("192.0.2.7")
	var found map[netip.Addr]Neighbor
	var failed map[netip.Addr]error
	err := h1.InNamespace(func() error {
		found, failed = Resolve(ctx, []netip.Addr{h2.Addr4(), h2.Addr6(), silent, routed, h1.Addr4()}, 5*time.Second)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	mac := lanMAC(t, h2)
	for _, a := range []netip.Addr{h2.Addr4(), h2.Addr6()} {
		if got := found[a].MAC.String(); got != mac || found[a].Ifindex == 0 {
			t.Errorf("%s resolved to %q on %d (failed: %v), want %s on lan0", a, got, found[a].Ifindex, failed[a], mac)
		}
	}
	if !errors.Is(failed[silent], ErrUnresolved) {
		t.Errorf("silent neighbour: %v, want ErrUnresolved", failed[silent])
	}
	if !errors.Is(failed[routed], ErrNotOnLink) {
		t.Errorf("address behind a gateway: %v, want ErrNotOnLink", failed[routed])
	}
	if failed[h1.Addr4()] == nil {
		t.Errorf("own address resolved: %+v", found[h1.Addr4()])
	}
}

// passProgram is an XDP program that passes everything, as an operator's
// or a crashed daemon's leftover.
func passProgram(t *testing.T) *ebpf.Program {
	t.Helper()
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.XDP, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, xdpPass), asm.Return()}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { prog.Close() })
	return prog
}

// TestAttach: the program attaches natively to a veth, replacing an XDP
// program left there, says so in Interfaces, reports an interface that
// does not exist, and detaches on an empty Set.
func TestAttach(t *testing.T) {
	w := twoHosts(t)
	h1 := w.Hosts()[0]
	p := newTestPlane(t)
	leftover := passProgram(t)
	attachedID := func() (uint32, error) {
		l, err := netlink.LinkByName(testnet.LANInterface)
		if err != nil || l.Attrs().Xdp == nil || !l.Attrs().Xdp.Attached {
			return 0, err
		}
		return l.Attrs().Xdp.ProgId, nil
	}
	err := h1.InNamespace(func() error {
		l, err := netlink.LinkByName(testnet.LANInterface)
		if err != nil {
			return err
		}
		if err := netlink.LinkSetXdpFd(l, leftover.FD()); err != nil {
			return err
		}
		setErr := p.Set(context.Background(), State{Interfaces: []string{testnet.LANInterface, "nope0"}})
		if setErr == nil || !strings.Contains(setErr.Error(), "nope0") {
			t.Errorf("Set with a missing interface: %v, want an error naming it", setErr)
		}
		want := []InterfaceStatus{{Name: testnet.LANInterface, Mode: Native}, {Name: "nope0"}}
		got := p.Interfaces()
		if len(got) != 2 || got[0] != want[0] || got[1].Mode != "" || got[1].Error == "" {
			t.Errorf("Interfaces() = %+v, want %+v with an error for nope0", got, want)
		}
		info, err := p.objs.VipdDsr.Info()
		if err != nil {
			return err
		}
		ourID, _ := info.ID()
		if id, err := attachedID(); err != nil || id != uint32(ourID) {
			t.Errorf("attached program %d (%v), want vipd's %d", id, err, ourID)
		}
		if err := p.Set(context.Background(), State{}); err != nil {
			return err
		}
		if id, err := attachedID(); err != nil || id != 0 {
			t.Errorf("after an empty Set, program %d (%v) still attached", id, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestAttachNotEthernet: an interface without a MAC is refused.
func TestAttachNotEthernet(t *testing.T) {
	w := twoHosts(t)
	p := newTestPlane(t)
	err := w.Hosts()[0].InNamespace(func() error {
		return p.Set(context.Background(), State{Interfaces: []string{"lo"}})
	})
	if err == nil || !strings.Contains(err.Error(), "not an Ethernet interface") {
		t.Errorf("attach to lo: %v, want not an Ethernet interface", err)
	}
}

// TestAttachGeneric: where the driver cannot run XDP natively (a bridge),
// the program runs in generic mode, and Interfaces says so.
func TestAttachGeneric(t *testing.T) {
	w := twoHosts(t)
	p := newTestPlane(t)
	err := w.Host("lan").InNamespace(func() error {
		if err := p.Set(context.Background(), State{Interfaces: []string{"br0"}}); err != nil {
			return err
		}
		if got := p.Interfaces(); len(got) != 1 || got[0].Mode != Generic {
			t.Errorf("Interfaces() = %+v, want br0 in generic mode", got)
		}
		return p.Set(context.Background(), State{})
	})
	if err != nil {
		t.Fatal(err)
	}
}
