package metrics

import "testing"

func TestScrapeShowsXDP(t *testing.T) {
	src := &fakeSource{}
	snap := snapshotA()
	snap.LoadBalancers = append(snap.LoadBalancers, LoadBalancer{Name: "dsr1", Announced: true, XDP: &XDPCounter{Packets: 10, Bytes: 1500}})
	snap.XDPInterfaces = []XDPInterface{{Name: "eth0", Mode: "native"}, {Name: "eth1"}}
	src.set(snap)
	_, s := setup(t, src)
	e := s.scrape()
	e.check(t, []want{
		{"vipd_lb_xdp_packets_total", []string{"lb", "dsr1"}, 10},
		{"vipd_lb_xdp_bytes_total", []string{"lb", "dsr1"}, 1500},
		{"vipd_xdp_attached", []string{"interface", "eth0", "mode", "native"}, 1},
		{"vipd_xdp_attached", []string{"interface", "eth1", "mode", ""}, 0},
	})
	if v, ok := e.value("vipd_lb_xdp_packets_total", "lb", "lb1"); ok {
		t.Errorf("the nat load balancer lb1 has an XDP counter: %v", v)
	}
}
