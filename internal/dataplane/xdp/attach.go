package xdp

import (
	"errors"
	"fmt"
	"net"

	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
)

// attachment is the program attached to one interface.
type attachment struct {
	link    link.Link
	ifindex int
	mac     string
	mode    AttachMode
}

// setInterfaces attaches the program to names and detaches it from every
// other interface it runs on. An interface that was deleted and created
// again (a new index) is attached anew.
func (p *Plane) setInterfaces(names []string) []error {
	p.wanted = append([]string(nil), names...)
	want := make(map[string]*net.Interface, len(names))
	var errs []error
	failed := map[string]string{}
	for _, name := range names {
		ifc, err := net.InterfaceByName(name)
		if err != nil {
			failed[name] = err.Error()
			errs = append(errs, fmt.Errorf("xdp: interface %s: %w", name, err))
			continue
		}
		want[name] = ifc
	}
	for name, a := range p.attached {
		if ifc, ok := want[name]; ok && ifc.Index == a.ifindex && ifc.HardwareAddr.String() == a.mac {
			continue
		}
		p.detach(name, a)
	}
	for name, ifc := range want {
		if p.attached[name] != nil {
			continue
		}
		a, err := p.attach(ifc)
		if err != nil {
			failed[name] = err.Error()
			errs = append(errs, fmt.Errorf("xdp: interface %s: %w", name, err))
			continue
		}
		p.attached[name] = a
		p.log.Info("XDP program attached", "event", "xdp_attach", "interface", name, "mode", string(a.mode))
	}
	p.failed = failed
	return errs
}

// attach runs the program on ifc: natively where the driver can, else in
// generic mode. A program left on the interface (by a vipd that did not
// use a bpf_link, or by hand) is detached first.
func (p *Plane) attach(ifc *net.Interface) (*attachment, error) {
	if len(ifc.HardwareAddr) != 6 {
		return nil, fmt.Errorf("not an Ethernet interface (MAC %q)", ifc.HardwareAddr)
	}
	if err := p.setIfaceMAC(ifc.Index, ifc.HardwareAddr); err != nil {
		return nil, err
	}
	if err := detachLeftover(ifc.Index); err != nil {
		return nil, err
	}
	a := &attachment{ifindex: ifc.Index, mac: ifc.HardwareAddr.String()}
	var nerr, gerr error
	a.link, nerr = link.AttachXDP(link.XDPOptions{Program: p.objs.VipdDsr, Interface: ifc.Index, Flags: link.XDPDriverMode})
	if nerr == nil {
		a.mode = Native
		return a, nil
	}
	a.link, gerr = link.AttachXDP(link.XDPOptions{Program: p.objs.VipdDsr, Interface: ifc.Index, Flags: link.XDPGenericMode})
	if gerr != nil {
		_ = p.objs.Ifaces.Delete(uint32(ifc.Index))
		return nil, fmt.Errorf("attach XDP: native: %w; generic: %w", nerr, gerr)
	}
	p.log.Warn("XDP program runs in generic mode: the driver cannot run it natively", "event", "xdp_attach",
		"interface", ifc.Name, "native_err", nerr)
	a.mode = Generic
	return a, nil
}

// detachLeftover removes an XDP program attached without a bpf_link (a
// link dies with the process that made it, so anything still attached
// after a restart was attached through netlink). A program held by a live
// link, another vipd's, cannot be removed so, and attaching fails.
func detachLeftover(ifindex int) error {
	l, err := netlink.LinkByIndex(ifindex)
	if err != nil {
		return fmt.Errorf("look up: %w", err)
	}
	x := l.Attrs().Xdp
	if x == nil || !x.Attached {
		return nil
	}
	flags := 0
	switch x.AttachMode {
	case nl.XDP_ATTACHED_SKB:
		flags = nl.XDP_FLAGS_SKB_MODE
	case nl.XDP_ATTACHED_DRV:
		flags = nl.XDP_FLAGS_DRV_MODE
	}
	if err := netlink.LinkSetXdpFdWithFlags(l, -1, flags); err != nil {
		return fmt.Errorf("detach the XDP program already attached (id %d): %w", x.ProgId, err)
	}
	return nil
}

func (p *Plane) detach(name string, a *attachment) {
	if err := a.link.Close(); err != nil {
		p.log.Warn("XDP program detach failed", "event", "xdp_detach", "interface", name, "err", err)
	}
	if err := p.objs.Ifaces.Delete(uint32(a.ifindex)); err != nil {
		p.log.Warn("XDP interface map entry not deleted", "event", "xdp_detach", "interface", name, "err", errors.Unwrap(err))
	}
	delete(p.attached, name)
	p.log.Info("XDP program detached", "event", "xdp_detach", "interface", name)
}
