package etcd

import (
	"fmt"
	"slices"

	"github.com/vipd/vipd/internal/testnet"
)

// Size is the number of members AddMembers adds: the smallest cluster
// that keeps a quorum when one member is down.
const Size = 3

// memberNames are the hosts AddMembers adds and MemberHosts finds.
var memberNames = []string{"etcd1", "etcd2", "etcd3"}

// AddMembers returns spec with Size plain hosts for etcd members (etcd1,
// etcd2, etcd3) appended to its Hosts, on the highest LAN addresses no
// other member uses, so tests need not pick addresses.
func AddMembers(spec testnet.Spec) (testnet.Spec, error) {
	addrs, err := spec.FreeAddrs(Size)
	if err != nil {
		return spec, fmt.Errorf("etcd: add members: %w", err)
	}
	hosts := slices.Clone(spec.Hosts)
	for i, name := range memberNames {
		hosts = append(hosts, testnet.NodeSpec{Name: name, Address: addrs[i]})
	}
	spec.Hosts = hosts
	return spec, nil
}

// MemberHosts returns the hosts AddMembers added to w's spec, in order,
// or an error if w lacks any of them.
func MemberHosts(w *testnet.World) ([]*testnet.Host, error) {
	var hosts []*testnet.Host
	for _, name := range memberNames {
		h := w.Host(name)
		if h == nil {
			return nil, fmt.Errorf("etcd: world %s has no host %s (build its spec with AddMembers)", w.Prefix(), name)
		}
		hosts = append(hosts, h)
	}
	return hosts, nil
}
