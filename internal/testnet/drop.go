package testnet

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// dropTable is the nftables table (family inet) in which a member drops
// traffic for DropTraffic. It is testnet's own: vipd's table and anything
// else in the namespace stay untouched, and deleting the namespace at
// Close deletes it too.
const dropTable = "testnet_drop"

// DropTraffic makes the member silently drop every packet it would send
// to, or receive from, peers, as a network partition would: a connection
// attempt hangs until its timeout, and an open connection stalls, with no
// reset or ICMP error to tell the member. Each call replaces the previous
// set of peers: a repeat changes nothing, and a call without peers heals
// the partition (removes the table). Packets between other members pass.
func (h *Host) DropTraffic(ctx context.Context, peers ...netip.Addr) error {
	script, err := dropScript(peers)
	if err != nil {
		return fmt.Errorf("%s: drop traffic: %w", h.name, err)
	}
	if _, err := runInput(ctx, script, "ip", "netns", "exec", h.ns, "nft", "-f", "-"); err != nil {
		return fmt.Errorf("%s: drop traffic: %w", h.name, err)
	}
	return nil
}

// dropScript renders one nft transaction that deletes the drop table and,
// if there are peers, creates it anew with them. "add table" first makes
// the delete succeed when the table does not exist yet.
func dropScript(peers []netip.Addr) (string, error) {
	var v4, v6 []string
	for _, p := range peers {
		switch {
		case p.Is4() || p.Is4In6():
			v4 = append(v4, p.Unmap().String())
		case p.Is6():
			v6 = append(v6, p.String())
		default:
			return "", fmt.Errorf("peer %v: not an IP address", p)
		}
	}
	// nft refuses a set declared with the same element twice.
	slices.Sort(v4)
	slices.Sort(v6)
	v4, v6 = slices.Compact(v4), slices.Compact(v6)
	var b strings.Builder
	fmt.Fprintf(&b, "add table inet %s\ndelete table inet %s\n", dropTable, dropTable)
	if len(peers) == 0 {
		return b.String(), nil
	}
	fmt.Fprintf(&b, "table inet %s {\n", dropTable)
	fmt.Fprintf(&b, "\tset peers4 {\n\t\ttype ipv4_addr\n%s\t}\n", elements(v4))
	fmt.Fprintf(&b, "\tset peers6 {\n\t\ttype ipv6_addr\n%s\t}\n", elements(v6))
	b.WriteString("\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n" +
		"\t\tip saddr @peers4 drop\n\t\tip6 saddr @peers6 drop\n\t}\n")
	b.WriteString("\tchain output {\n\t\ttype filter hook output priority filter; policy accept;\n" +
		"\t\tip daddr @peers4 drop\n\t\tip6 daddr @peers6 drop\n\t}\n")
	b.WriteString("}\n")
	return b.String(), nil
}

// elements is a set's elements line, or nothing for an empty set.
func elements(addrs []string) string {
	if len(addrs) == 0 {
		return ""
	}
	return "\t\telements = { " + strings.Join(addrs, ", ") + " }\n"
}
