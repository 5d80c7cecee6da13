package testnet

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestDropScript(t *testing.T) {
	const reset = "add table inet testnet_drop\ndelete table inet testnet_drop\n"
	tests := []struct {
		name  string
		peers []netip.Addr
		want  string
	}{
		{"heal", nil, reset},
		{"both families, deduplicated", []netip.Addr{addr("10.255.255.254"), addr("fd00:255::fe"), addr("::ffff:10.255.255.253"), addr("10.255.255.254")}, reset + `table inet testnet_drop {
	set peers4 {
		type ipv4_addr
		elements = { 10.255.255.253, 10.255.255.254 }
	}
	set peers6 {
		type ipv6_addr
		elements = { fd00:255::fe }
	}
	chain input {
		type filter hook input priority filter; policy accept;
		ip saddr @peers4 drop
		ip6 saddr @peers6 drop
	}
	chain output {
		type filter hook output priority filter; policy accept;
		ip daddr @peers4 drop
		ip6 daddr @peers6 drop
	}
}
`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := dropScript(tt.peers)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("dropScript (-want +got):\n%s", diff)
			}
		})
	}
	if _, err := dropScript([]netip.Addr{{}}); err == nil {
		t.Error("dropScript with an invalid address: no error")
	}
}
