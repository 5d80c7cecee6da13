package metrics

import (
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// fakeSource returns whatever snapshot the test last set.
type fakeSource struct {
	mu   sync.Mutex
	snap Snapshot
}

func (f *fakeSource) MetricsSnapshot() Snapshot {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.snap
}

func (f *fakeSource) set(s Snapshot) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.snap = s
}

// setup registers a Metrics on a fresh registry and serves it over HTTP.
func setup(t *testing.T, src Source) (*Metrics, *scraper) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := New(reg, src, BuildInfo{Version: "1.2.3", GoVersion: "go1.26", Revision: "abc123"})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	srv := httptest.NewServer(Handler(reg, nil))
	t.Cleanup(srv.Close)
	return m, &scraper{t: t, url: srv.URL + "/metrics", reg: reg}
}

// scraper fetches and parses the exposition.
type scraper struct {
	t   *testing.T
	url string
	reg *prometheus.Registry
}

// scrape GETs the metrics and parses them as Prometheus does.
func (s *scraper) scrape() exposition {
	s.t.Helper()
	resp, err := http.Get(s.url)
	if err != nil {
		s.t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		s.t.Fatalf("scrape: status %d, err %v, body %q", resp.StatusCode, err, body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		s.t.Fatalf("parse scrape: %v\n%s", err, body)
	}
	return exposition{families: families, text: string(body)}
}

// exposition is one parsed scrape.
type exposition struct {
	families map[string]*dto.MetricFamily
	text     string
}

// names lists the metric families, sorted.
func (e exposition) names() []string {
	return slices.Sorted(maps.Keys(e.families))
}

// series returns the metric of family name with exactly labels, or nil.
func (e exposition) series(name string, labels ...string) *dto.Metric {
	f := e.families[name]
	if f == nil {
		return nil
	}
	want := labelMap(labels)
	for _, m := range f.GetMetric() {
		got := map[string]string{}
		for _, lp := range m.GetLabel() {
			got[lp.GetName()] = lp.GetValue()
		}
		if maps.Equal(got, want) {
			return m
		}
	}
	return nil
}

// value returns the gauge or counter value of a series; ok is false when
// the series is missing.
func (e exposition) value(name string, labels ...string) (v float64, ok bool) {
	m := e.series(name, labels...)
	switch {
	case m == nil:
		return 0, false
	case m.Gauge != nil:
		return m.GetGauge().GetValue(), true
	case m.Counter != nil:
		return m.GetCounter().GetValue(), true
	case m.Untyped != nil:
		return m.GetUntyped().GetValue(), true
	}
	return 0, false
}

// count is the number of series in family name.
func (e exposition) count(name string) int {
	return len(e.families[name].GetMetric())
}

// want is one expected series value.
type want struct {
	name   string
	labels []string // name, value, name, value, ...
	value  float64
}

func (w want) String() string { return fmt.Sprintf("%s%v", w.name, w.labels) }

// check compares every expected value with the scrape.
func (e exposition) check(t *testing.T, wants []want) {
	t.Helper()
	for _, w := range wants {
		got, ok := e.value(w.name, w.labels...)
		if !ok {
			t.Errorf("%s: series missing", w)
		} else if got != w.value {
			t.Errorf("%s = %v, want %v", w, got, w.value)
		}
	}
}

func labelMap(pairs []string) map[string]string {
	out := make(map[string]string, len(pairs)/2)
	for i := 0; i+1 < len(pairs); i += 2 {
		out[pairs[i]] = pairs[i+1]
	}
	return out
}
