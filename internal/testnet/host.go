package testnet

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
)

// bridgeName is the LAN bridge inside the LAN namespace.
const bridgeName = "br0"

// netnsDir is where `ip netns` keeps named namespaces.
const netnsDir = "/run/netns"

// ErrNamespaceExists is returned by New when a namespace the world needs
// already exists: another world, or someone else, uses its prefix.
var ErrNamespaceExists = errors.New("network namespace already exists")

// Host is one member of a world: a namespace attached to the LAN. Routers,
// nodes and the client embed it.
type Host struct {
	world *World
	name  string
	ns    string
	dir   string
	addr4 netip.Addr
	addr6 netip.Addr
}

// Name is the member's name from the spec.
func (h *Host) Name() string { return h.name }

// Namespace is the member's network namespace (for `ip netns exec`).
func (h *Host) Namespace() string { return h.ns }

// Dir is the member's directory in the world's temp dir.
func (h *Host) Dir() string { return h.dir }

// Addr4 is the member's LAN IPv4 address (invalid for the LAN namespace).
func (h *Host) Addr4() netip.Addr { return h.addr4 }

// Addr6 is the member's LAN IPv6 address (invalid for the LAN namespace).
func (h *Host) Addr6() netip.Addr { return h.addr6 }

// Exec runs a short command inside the member's namespace and returns its
// stdout; the error carries its stderr.
func (h *Host) Exec(ctx context.Context, command string, args ...string) (string, error) {
	out, err := runIn(ctx, h.ns, command, args...)
	if err != nil {
		return out, fmt.Errorf("%s: %w", h.name, err)
	}
	return out, nil
}

// StartProcess starts argv in the member's namespace, appending its stdout
// and stderr to PROGRAM.log in the member's directory, and records it so
// the world's Close ends it. Like every process of a world it runs in its
// own session and outlives the program that started it.
func (h *Host) StartProcess(program string, argv ...string) (*Process, error) {
	if !memberName.MatchString(program) || len(argv) == 0 {
		return nil, fmt.Errorf("%s: start %q %q: want a program name matching %s and a command", h.name, program, argv, memberName)
	}
	return h.world.start(h, program, program+".log", argv)
}

// member returns the Host of member name with LAN IPv4 address addr
// (invalid for the LAN namespace), whether its namespace exists or not.
func (w *World) member(name string, addr netip.Addr) *Host {
	h := &Host{world: w, name: name, ns: w.spec.Prefix + "-" + name, dir: filepath.Join(w.dir, name)}
	if addr.IsValid() {
		h.addr4, h.addr6 = addr, w.spec.Addr6(addr)
	}
	return h
}

// newNamespace creates the namespace and directory of member name.
func (w *World) newNamespace(ctx context.Context, name string, addr netip.Addr) (*Host, error) {
	h := w.member(name, addr)
	if _, err := os.Stat(filepath.Join(netnsDir, h.ns)); err == nil {
		return nil, fmt.Errorf("namespace %s: %w", h.ns, ErrNamespaceExists)
	}
	if err := os.Mkdir(h.dir, 0o755); err != nil {
		return nil, err
	}
	if _, err := run(ctx, "ip", "netns", "add", h.ns); err != nil {
		return nil, err
	}
	if err := w.recordNamespace(h.ns); err != nil {
		return nil, err
	}
	// No DAD anywhere: addresses, link-local ones too, work at once.
	err := sysctl(ctx, h.ns, "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0")
	if err != nil {
		return nil, err
	}
	return h, ipBatch(ctx, h.ns, []string{"link set lo up"})
}

// buildLAN creates the bridge's namespace and the bridge.
func (w *World) buildLAN(ctx context.Context) error {
	h, err := w.newNamespace(ctx, "lan", netip.Addr{})
	if err != nil {
		return fmt.Errorf("lan: %w", err)
	}
	w.lan = h
	return ipBatch(ctx, h.ns, []string{
		"link add " + bridgeName + " type bridge stp_state 0 mcast_snooping 0",
		"link set " + bridgeName + " up",
	})
}

// addMember creates member spec's namespace and plugs it into the LAN with
// both its addresses.
func (w *World) addMember(ctx context.Context, spec NodeSpec) (*Host, error) {
	h, err := w.newNamespace(ctx, spec.Name, spec.Address)
	if err != nil {
		return nil, err
	}
	port := "v" + spec.Name
	err = ipBatch(ctx, w.lan.ns, []string{
		fmt.Sprintf("link add %s type veth peer name %s netns %s", port, LANInterface, h.ns),
		fmt.Sprintf("link set %s master %s", port, bridgeName),
		fmt.Sprintf("link set %s up", port),
	})
	if err != nil {
		return nil, err
	}
	return h, ipBatch(ctx, h.ns, []string{
		fmt.Sprintf("addr add %s/%d dev %s", h.addr4, w.spec.LAN4.Bits(), LANInterface),
		fmt.Sprintf("addr add %s/%d dev %s nodad", h.addr6, w.spec.LAN6.Bits(), LANInterface),
		fmt.Sprintf("link set %s up", LANInterface),
	})
}

// addHost adds a node or the client: a member that routes by default via
// the first router and reaches each router's peer address through that
// router.
func (w *World) addHost(ctx context.Context, spec NodeSpec) (*Host, error) {
	h, err := w.addMember(ctx, spec)
	if err != nil {
		return nil, err
	}
	// Redirects would let the client bypass the router on the shared LAN.
	err = sysctl(ctx, h.ns, "net.ipv4.conf.all.accept_redirects=0", "net.ipv6.conf.all.accept_redirects=0")
	if err != nil {
		return nil, err
	}
	var routes []string
	for i, r := range w.spec.Routers {
		if i == 0 {
			routes = append(routes,
				fmt.Sprintf("route add default via %s", r.Address),
				fmt.Sprintf("route add default via %s", w.spec.Addr6(r.Address)))
		}
		if r.PeerAddress.Is4() {
			routes = append(routes, fmt.Sprintf("route add %s/32 via %s", r.PeerAddress, r.Address))
		} else if r.PeerAddress.IsValid() {
			routes = append(routes, fmt.Sprintf("route add %s/128 via %s", r.PeerAddress, w.spec.Addr6(r.Address)))
		}
	}
	return h, ipBatch(ctx, h.ns, routes)
}
