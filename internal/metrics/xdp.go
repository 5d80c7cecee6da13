package metrics

import "github.com/prometheus/client_golang/prometheus"

// XDPCounter is what the XDP program forwarded for one load balancer,
// over all CPUs, since the load balancer was programmed.
type XDPCounter struct {
	Packets, Bytes uint64
}

// XDPInterface is an interface the XDP program should run on.
type XDPInterface struct {
	Name string // label interface
	Mode string // label mode: native or generic; "" while not attached
}

var (
	descLBXDPPackets = prometheus.NewDesc("vipd_lb_xdp_packets_total",
		"Packets the XDP program forwarded to the load balancer's backends (mode dsr).", []string{"lb"}, nil)
	descLBXDPBytes = prometheus.NewDesc("vipd_lb_xdp_bytes_total",
		"Bytes (Ethernet frames) the XDP program forwarded to the load balancer's backends (mode dsr).", []string{"lb"}, nil)
	descXDPAttached = prometheus.NewDesc("vipd_xdp_attached",
		"1 if the XDP program runs on the interface, in the mode the label names (native or generic); 0 (empty mode) if it could not be attached.",
		[]string{"interface", "mode"}, nil)
)

func collectXDP(ch chan<- prometheus.Metric, snap Snapshot) {
	for _, l := range snap.LoadBalancers {
		if l.XDP == nil {
			continue
		}
		ch <- constMetric(descLBXDPPackets, prometheus.CounterValue, float64(l.XDP.Packets), l.Name)
		ch <- constMetric(descLBXDPBytes, prometheus.CounterValue, float64(l.XDP.Bytes), l.Name)
	}
	for _, i := range snap.XDPInterfaces {
		ch <- constMetric(descXDPAttached, prometheus.GaugeValue, boolValue(i.Mode != ""), i.Name, i.Mode)
	}
}
