package metrics

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/vipd/vipd/internal/health"
	"github.com/vipd/vipd/internal/testnet"
)

// monitorSource is a Source over one real health monitor, as the agent's is.
type monitorSource struct {
	name string
	mon  *health.Monitor
}

func (s monitorSource) MetricsSnapshot() Snapshot {
	st := s.mon.Status()
	return Snapshot{Services: []Service{{Name: s.name, Up: st.Up, Transitions: st.Transitions, CheckFailures: st.CheckFailures}}}
}

// A real TCP check through a real monitor: the scrape follows the service
// up and down, and the check durations arrive through the observer.
func TestScrapeFollowsARealMonitor(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for range 10_000 {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			conn.Close()
		}
	}()

	var m *Metrics
	observe := health.WithObserver(func(kind string, took time.Duration, _ error) { m.ObserveCheck("web", kind, took) })
	mon := health.NewMonitor("web", []health.Checker{health.TCP{Address: ln.Addr().String()}},
		health.Params{Interval: 20 * time.Millisecond, Timeout: time.Second, Rise: 2, Fall: 2}, nil, observe)
	m, s := setup(t, monitorSource{name: "web", mon: mon})

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- mon.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("monitor Run: %v", err)
		}
	}()

	e := pollScrape(t, s, "the service to come up", func(e exposition) bool {
		v, _ := e.value("vipd_service_up", "service", "web")
		return v == 1
	})
	e.check(t, []want{
		{"vipd_service_transitions_total", []string{"service", "web"}, 1},
		{"vipd_service_check_failures_total", []string{"service", "web"}, 0},
	})
	if n := e.series("vipd_check_duration_seconds", "service", "web", "kind", "tcp").GetHistogram().GetSampleCount(); n < 2 {
		t.Errorf("%d tcp check durations observed, want at least the 2 rounds of rise", n)
	}

	ln.Close()
	e = pollScrape(t, s, "the service to go down", func(e exposition) bool {
		v, _ := e.value("vipd_service_up", "service", "web")
		return v == 0
	})
	e.check(t, []want{{"vipd_service_transitions_total", []string{"service", "web"}, 2}})
	if v, _ := e.value("vipd_service_check_failures_total", "service", "web"); v < 2 {
		t.Errorf("vipd_service_check_failures_total = %v after going down, want at least fall = 2", v)
	}
}

// pollScrape scrapes until cond holds, for at most testWait.
func pollScrape(t *testing.T, s *scraper, what string, cond func(exposition) bool) exposition {
	t.Helper()
	var e exposition
	err := testnet.WaitFor(t.Context(), testWait, func(context.Context) error {
		if e = s.scrape(); !cond(e) {
			return fmt.Errorf("not yet: %s", what)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%v\nlast scrape:\n%s", err, e.text)
	}
	return e
}
