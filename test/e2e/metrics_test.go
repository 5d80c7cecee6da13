package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/vipd/vipd/internal/testnet"
)

// TestMetrics: a scrape parses, and its values follow a service going down.
func TestMetrics(t *testing.T) {
	w := birdWorld(t, 1, "")
	r, n1 := w.Router("r1"), w.Node("n1")
	flag := filepath.Join(n1.Dir(), "healthy")
	if err := os.WriteFile(flag, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	startVipdConfig(t, n1, webConfig(r1Peer(r), fmt.Sprintf(`    interval: 200ms
    checks:
      - exec: {command: [test, -f, %q]}
state_dir: %s
api: {socket: %s}
metrics: {listen: "127.0.0.1:9477"}
`, flag, n1.StateDir(), n1.Socket())))
	waitFIB(t, r, vip4, n1.Addr4())

	// The metrics listener is on the node's loopback: dial inside its namespace.
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, address string) (net.Conn, error) {
		return n1.DialContext(ctx, network, address)
	}}}
	waitMetric := func(name, label, value string, want float64) {
		t.Helper()
		err := testnet.WaitFor(t.Context(), convergeTimeout, func(ctx context.Context) error {
			got, err := scrape(ctx, client, name, label, value)
			if err != nil {
				return err
			}
			if got != want {
				return fmt.Errorf("%s{%s=%q} = %v, want %v", name, label, value, got, want)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	waitMetric("vipd_service_up", "service", "web", 1)
	waitMetric("vipd_bgp_session_up", "peer", "r1", 1)
	waitMetric("vipd_bgp_announced_prefixes", "peer", "r1", 1)
	if err := os.Remove(flag); err != nil {
		t.Fatal(err)
	}
	waitMetric("vipd_service_up", "service", "web", 0)
	waitMetric("vipd_service_transitions_total", "service", "web", 2)
	waitMetric("vipd_bgp_announced_prefixes", "peer", "r1", 0)
}

// scrape fetches /metrics and returns the value of the series of family
// name whose label has value.
func scrape(ctx context.Context, c *http.Client, name, label, value string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://127.0.0.1:9477/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return 0, fmt.Errorf("parse scrape: %w", err)
	}
	fam, ok := families[name]
	if !ok {
		return 0, fmt.Errorf("no %s in the scrape", name)
	}
	for _, m := range fam.GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == label && l.GetValue() == value {
				return metricValue(m), nil
			}
		}
	}
	return 0, fmt.Errorf("no %s{%s=%q} in the scrape", name, label, value)
}

func metricValue(m *dto.Metric) float64 {
	switch {
	case m.GetGauge() != nil:
		return m.GetGauge().GetValue()
	case m.GetCounter() != nil:
		return m.GetCounter().GetValue()
	}
	return 0
}
