package agent

import (
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/vipd/vipd/internal/config"
)

func TestMonitorsSync(t *testing.T) {
	ms := newMonitors(slog.New(slog.DiscardHandler), func() {}, nil)
	defer ms.stopAll()
	web := config.Service{Name: "web", VIPs: []netip.Addr{netip.MustParseAddr("192.0.2.1")}, Interval: time.Hour,
		Timeout: time.Second, Rise: 1, Fall: 1, Checks: []config.Check{{Exec: &config.ExecCheck{Command: []string{"true"}}}}}
	static := config.Service{Name: "static", Interval: time.Second, Timeout: time.Second, Rise: 1, Fall: 1}

	if got := ms.sync([]config.Service{web, static}); len(got) != 2 {
		t.Fatalf("first sync started %v, want both", got)
	}
	webMED := web
	webMED.MED = 500
	if got := ms.sync([]config.Service{webMED, static}); len(got) != 0 {
		t.Errorf("a MED change restarted monitors %v; health state must survive it", got)
	}
	webRise := web
	webRise.Rise = 3
	if got := ms.sync([]config.Service{webRise}); len(got) != 1 || got[0] != "web" {
		t.Errorf("a rise change restarted %v, want [web]", got)
	}
	if _, ok := ms.status("static"); ok {
		t.Error("a removed service still has a monitor")
	}

	if name, _ := ms.stalest(time.Now()); name != "" {
		t.Errorf("stalest right after start = %q, want none", name)
	}
	if name, _ := ms.stalest(time.Now().Add(3 * time.Hour)); name != "web" {
		t.Errorf("stalest three hours on = %q, want web (its interval is 1h)", name)
	}
}
