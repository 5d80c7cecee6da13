package api

import (
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/vipd/vipd/internal/config"
	"github.com/vipd/vipd/internal/lb"
)

func (s *Server) createLoadBalancer(w http.ResponseWriter, r *http.Request) error {
	var req LoadBalancerRequest
	if err := decodeBody(w, r, &req); err != nil {
		return err
	}
	spec, err := req.spec()
	if err != nil {
		return err
	}
	l, created, err := s.backend.CreateLoadBalancer(r.Context(), spec)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/loadbalancer/"+l.UUID)
	if !created {
		return writeJSON(w, http.StatusOK, l)
	}
	return writeJSON(w, http.StatusCreated, l)
}

func (s *Server) cluster(w http.ResponseWriter, _ *http.Request) error {
	st, err := s.backend.Cluster()
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, st)
}

func (s *Server) listLoadBalancers(w http.ResponseWriter, _ *http.Request) error {
	list := s.backend.LoadBalancers()
	if list == nil {
		list = []LoadBalancer{} // an empty array, never null
	}
	return writeJSON(w, http.StatusOK, list)
}

func (s *Server) getLoadBalancer(w http.ResponseWriter, r *http.Request) error {
	l, err := s.backend.LoadBalancer(r.PathValue("uuid"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, l)
}

func (s *Server) deleteLoadBalancer(w http.ResponseWriter, r *http.Request) error {
	uuid := r.PathValue("uuid")
	if err := s.backend.DeleteLoadBalancer(r.Context(), uuid); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, Deleted{UUID: uuid, Deleted: true})
}

func (s *Server) addBackend(w http.ResponseWriter, r *http.Request) error {
	var req BackendRequest
	if err := decodeBody(w, r, &req); err != nil {
		return err
	}
	spec, err := req.spec()
	if err != nil {
		return err
	}
	l, err := s.backend.AddBackend(r.Context(), r.PathValue("uuid"), spec)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, l)
}

func (s *Server) removeBackend(w http.ResponseWriter, r *http.Request) error {
	l, err := s.backend.RemoveBackend(r.Context(), r.PathValue("uuid"), r.PathValue("backend"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, l)
}

// spec turns the request into the model's terms. It only parses
// (addresses, durations, status ranges); lb validates the result.
func (req *LoadBalancerRequest) spec() (lb.Spec, error) {
	spec := lb.Spec{
		Name:       req.Name,
		Port:       req.Port,
		Protocol:   lb.Protocol(req.Protocol),
		Mode:       lb.Mode(req.Mode),
		Pool:       req.Pool,
		Ports:      req.Ports,
		Masquerade: req.Masquerade,
		OnEmpty:    lb.OnEmpty(req.OnEmpty),
		LocalPref:  req.LocalPref,
		Nodes:      req.Nodes,
	}
	var err error
	if spec.Address, err = parseAddr("address", req.Address); err != nil {
		return lb.Spec{}, err
	}
	if req.Check != nil {
		if spec.Check, err = req.Check.model(); err != nil {
			return lb.Spec{}, err
		}
	}
	return spec, nil
}

func (req *BackendRequest) spec() (lb.BackendSpec, error) {
	ip, err := parseAddr("ip", req.IP)
	if err != nil {
		return lb.BackendSpec{}, err
	}
	return lb.BackendSpec{IP: ip, Port: req.Port, Weight: req.Weight}, nil
}

// parseAddr parses an IP address; "" is the zero Addr (not given).
func parseAddr(field, s string) (netip.Addr, error) {
	if s == "" {
		return netip.Addr{}, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, badRequest(field, "want an IPv4 or IPv6 address, got %q", s)
	}
	return a, nil
}

func (c *Check) model() (*lb.Check, error) {
	m := &lb.Check{Type: lb.CheckType(c.Type), Path: c.Path, Rise: c.Rise, Fall: c.Fall}
	if c.ExpectStatus != "" {
		r, err := config.ParseStatusRange(c.ExpectStatus)
		if err != nil {
			return nil, badRequest("check.expect_status", "%v", err)
		}
		m.StatusMin, m.StatusMax = r.Min, r.Max
	}
	var err error
	if m.Interval, err = parseDuration("check.interval", c.Interval); err != nil {
		return nil, err
	}
	if m.FastInterval, err = parseDuration("check.fast_interval", c.FastInterval); err != nil {
		return nil, err
	}
	if m.Timeout, err = parseDuration("check.timeout", c.Timeout); err != nil {
		return nil, err
	}
	return m, nil
}

// parseDuration parses a Go duration; "" is 0 (the default).
func parseDuration(field, s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, badRequest(field, `want a duration like "1s" or "300ms", got %q`, s)
	}
	return d, nil
}

// NewLoadBalancer renders a load balancer for the API. state gives each
// backend's health; announced and reason say whether its address is
// announced, and why.
func NewLoadBalancer(l lb.LoadBalancer, state func(lb.Backend) lb.BackendState, announced bool, reason string) LoadBalancer {
	out := LoadBalancer{
		UUID:       l.UUID,
		Name:       l.Spec.Name,
		EIP:        addrString(l.Address()),
		Port:       l.Spec.Port,
		Protocol:   string(l.Spec.Protocol),
		Mode:       string(l.Spec.Mode),
		Pool:       l.Spec.Pool,
		Ports:      append([]uint16{}, l.Spec.Ports...),
		Masquerade: l.Spec.Masquerade != nil && *l.Spec.Masquerade,
		OnEmpty:    string(l.Spec.OnEmpty),
		LocalPref:  l.Spec.LocalPrefOrDefault(),
		Backends:   make([]LoadBalancerBackend, 0, len(l.Backends)),
		Announced:  announced,
		Reason:     reason,
		Created:    l.Created,
		Nodes:      append([]string{}, l.Spec.Nodes...),
	}
	if c := l.Spec.Check; c != nil {
		out.Check = &Check{Type: string(c.Type), Path: c.Path, ExpectStatus: statusRange(c.StatusMin, c.StatusMax),
			Interval: durationString(c.Interval), FastInterval: durationString(c.FastInterval),
			Timeout: durationString(c.Timeout), Rise: c.Rise, Fall: c.Fall}
	}
	for _, b := range l.Backends {
		out.Backends = append(out.Backends, LoadBalancerBackend{UUID: b.UUID, IP: addrString(b.IP), Port: b.Port,
			Weight: b.Weight, State: string(state(b))})
	}
	return out
}

// addrString is a's text, or "" for the zero Addr (not "invalid IP").
func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

func durationString(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return d.String()
}

// statusRange writes a status range the way expect_status takes it.
func statusRange(lo, hi int) string {
	switch {
	case lo == 0 && hi == 0:
		return ""
	case lo == hi:
		return strconv.Itoa(lo)
	default:
		return strconv.Itoa(lo) + "-" + strconv.Itoa(hi)
	}
}
