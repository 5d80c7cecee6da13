package lb

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/vipd/vipd/internal/config"
)

// Limits and defaults of a load balancer's fields.
const (
	MaxNameLen       = 128 // bytes of UTF-8
	MaxWeight        = 100 // keeps every backend visible in a Maglev table
	MaxBackends      = 256
	MinCheckInterval = 100 * time.Millisecond
	MaxRiseFall      = 100

	defaultCheckInterval = time.Second
	defaultCheckTimeout  = time.Second
	defaultRiseFall      = 2
)

// WithDefaults returns s with its zero fields filled in. It does not
// choose a pool or an address: that is the Registry's job.
func (s Spec) WithDefaults() Spec {
	if s.Protocol == "" {
		s.Protocol = TCP
	}
	if s.Mode == "" {
		s.Mode = ModeNAT
	}
	if s.Masquerade == nil {
		masq := s.Mode == ModeNAT
		s.Masquerade = &masq
	}
	if s.OnEmpty == "" {
		s.OnEmpty = OnEmptyWithdraw
	}
	if s.LocalPref == nil {
		pref := uint32(config.DefaultLocalPref)
		s.LocalPref = &pref
	}
	if s.Check != nil {
		c := s.Check.withDefaults()
		s.Check = &c
	}
	if len(s.Nodes) == 0 {
		s.Nodes = nil // every node, however the request said it
	}
	return s
}

func (c Check) withDefaults() Check {
	if c.Type == CheckHTTP {
		if c.Path == "" {
			c.Path = "/"
		}
		if c.StatusMin == 0 && c.StatusMax == 0 {
			c.StatusMin, c.StatusMax = 200, 299
		}
	}
	if c.Interval == 0 {
		c.Interval = defaultCheckInterval
	}
	if c.FastInterval == 0 {
		c.FastInterval = config.DefaultFastInterval(c.Interval)
	}
	if c.Timeout == 0 {
		c.Timeout = min(defaultCheckTimeout, c.FastInterval)
	}
	if c.Rise == 0 {
		c.Rise = defaultRiseFall
	}
	if c.Fall == 0 {
		c.Fall = defaultRiseFall
	}
	return c
}

// checkName says what is wrong with a load balancer's name, or "". A name
// is a label people choose ("test loadbalancer", "Käse-Shop"): any
// printable UTF-8 up to MaxNameLen bytes. Control characters could forge
// lines in logs and terminals, and leading or trailing spaces would make
// two names look alike, so they are refused. A name is never part of a
// URL, an nft object or a file name: those use the UUID.
func checkName(s string) string {
	switch {
	case s == "":
		return "required"
	case len(s) > MaxNameLen:
		return fmt.Sprintf("at most %d bytes", MaxNameLen)
	case !utf8.ValidString(s):
		return "not valid UTF-8"
	case strings.TrimSpace(s) != s:
		return "leading or trailing space"
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return fmt.Sprintf("non-printable character %U", r)
		}
	}
	return ""
}

// Validate reports the first problem of a defaulted spec as a *FieldError.
func (s Spec) Validate() error {
	switch {
	case checkName(s.Name) != "":
		return fieldErrorf("name", "%s, got %q", checkName(s.Name), s.Name)
	case s.Port == 0:
		return fieldErrorf("port", "required: a port 1..65535")
	case s.Protocol != TCP && s.Protocol != UDP:
		return fieldErrorf("protocol", "want tcp or udp, got %q", s.Protocol)
	case s.Mode != ModeNAT && s.Mode != ModeLocal && s.Mode != ModeDSR:
		return fieldErrorf("mode", "want nat, local or dsr, got %q", s.Mode)
	case s.OnEmpty != OnEmptyWithdraw && s.OnEmpty != OnEmptyAnnounce:
		return fieldErrorf("on_empty", "want withdraw or announce, got %q", s.OnEmpty)
	case s.Mode != ModeNAT && s.Masquerade != nil && *s.Masquerade:
		return fieldErrorf("masquerade", "only for mode nat: mode %s keeps the client's address", s.Mode)
	case s.Pool != "" && !config.IsName(s.Pool):
		return fieldErrorf("pool", "want a pool name, got %q", s.Pool)
	}
	if s.Address.IsValid() {
		if err := checkUnicast(s.Address); err != nil {
			return &FieldError{Field: "address", Msg: err.Error()}
		}
	}
	if err := checkPorts(s.Ports); err != nil {
		return err
	}
	if err := checkNodes(s.Nodes); err != nil {
		return err
	}
	if s.Check != nil {
		return s.Check.validate()
	}
	return nil
}

func checkPorts(ports []uint16) error {
	seen := make(map[uint16]bool, len(ports))
	for i, p := range ports {
		field := fmt.Sprintf("ports[%d]", i)
		switch {
		case p == 0:
			return fieldErrorf(field, "want a port 1..65535, got 0")
		case seen[p]:
			return fieldErrorf(field, "port %d is listed twice", p)
		}
		seen[p] = true
	}
	return nil
}

func (c Check) validate() error {
	switch {
	case c.Type != CheckTCP && c.Type != CheckHTTP:
		return fieldErrorf("check.type", "want tcp or http, got %q", c.Type)
	case c.Type == CheckTCP && c.Path != "":
		return fieldErrorf("check.path", "only for http checks")
	case c.Type == CheckHTTP && (!strings.HasPrefix(c.Path, "/") || strings.ContainsAny(c.Path, " \t\r\n#")):
		return fieldErrorf("check.path", "want an absolute URL path like /healthz, got %q", c.Path)
	case c.Type == CheckHTTP && (c.StatusMin < 100 || c.StatusMax > 599 || c.StatusMin > c.StatusMax):
		return fieldErrorf("check.expect_status", "want codes in 100..599, low to high")
	case c.Interval < MinCheckInterval:
		return fieldErrorf("check.interval", "must be at least %s, got %s", MinCheckInterval, c.Interval)
	case c.FastInterval < MinCheckInterval || c.FastInterval > c.Interval:
		return fieldErrorf("check.fast_interval", "must be %s..interval (%s), got %s", MinCheckInterval, c.Interval, c.FastInterval)
	case c.Timeout <= 0:
		return fieldErrorf("check.timeout", "must be more than 0")
	case c.Timeout > c.Interval:
		return fieldErrorf("check.timeout", "must not be longer than interval (%s), got %s", c.Interval, c.Timeout)
	case c.Rise < 1 || c.Rise > MaxRiseFall:
		return fieldErrorf("check.rise", "must be 1..%d, got %d", MaxRiseFall, c.Rise)
	case c.Fall < 1 || c.Fall > MaxRiseFall:
		return fieldErrorf("check.fall", "must be 1..%d, got %d", MaxRiseFall, c.Fall)
	}
	return nil
}

// WithDefaults returns b with a zero weight set to 1, in local mode a
// missing IP set to the load balancer's address and in dsr mode a missing
// port set to the load balancer's.
func (b BackendSpec) WithDefaults(l *LoadBalancer) BackendSpec {
	if b.Weight == 0 {
		b.Weight = 1
	}
	if l.Spec.Mode == ModeDSR && b.Port == 0 {
		b.Port = l.Spec.Port
	}
	if l.Spec.Mode == ModeLocal && !b.IP.IsValid() {
		b.IP = l.Address()
	}
	return b
}

// Validate reports the first problem of a defaulted backend of l.
func (b BackendSpec) Validate(l *LoadBalancer) error {
	addr := l.Address()
	switch {
	case !b.IP.IsValid():
		return fieldErrorf("ip", "required in mode nat")
	case b.Port == 0:
		return fieldErrorf("port", "required: a port 1..65535")
	case b.Weight > MaxWeight:
		return fieldErrorf("weight", "must be 1..%d, got %d", MaxWeight, b.Weight)
	case l.Spec.Mode == ModeLocal && b.IP != addr:
		return fieldErrorf("ip", "in mode local a backend is a port on this host: omit ip, or give the load balancer's address %s", addr)
	case b.IP.Is4() != addr.Is4():
		return fieldErrorf("ip", "%s and the load balancer's address %s are of different families", b.IP, addr)
	case l.Spec.Mode != ModeLocal && b.IP == addr:
		return fieldErrorf("ip", "is the load balancer's own address; use mode local to forward to this host")
	case l.Spec.Mode == ModeDSR && b.Port != l.Spec.Port:
		// The frame reaches the backend as the client sent it.
		return fieldErrorf("port", "in mode dsr a backend serves the load balancer's port %d (packets are not rewritten), got %d", l.Spec.Port, b.Port)
	}
	if err := checkUnicast(b.IP); err != nil {
		return &FieldError{Field: "ip", Msg: err.Error()}
	}
	return nil
}

// checkUnicast refuses addresses that cannot be a service or backend
// address, and forms that compare unequal to what the kernel uses.
func checkUnicast(a netip.Addr) error {
	switch {
	case a.Zone() != "":
		return errors.New("addresses with a zone are not supported")
	case a.Is4In6():
		return fmt.Errorf("write the IPv4-mapped address as %s", a.Unmap())
	}
	if what := config.SpecialAddr(a); what != "" {
		return fmt.Errorf("%s is not an ordinary unicast address: it is %s", a, what)
	}
	return nil
}

// Validate checks a whole load balancer as stored: its spec, its address
// and every backend.
func (l *LoadBalancer) Validate() error {
	switch {
	case l.UUID == "":
		return fieldErrorf("uuid", "missing")
	case !l.Address().IsValid():
		return fieldErrorf("address", "missing")
	case l.Spec.Pool == "":
		return fieldErrorf("pool", "missing")
	}
	if err := l.Spec.Validate(); err != nil {
		return err
	}
	seen := make(map[netip.AddrPort]bool, len(l.Backends))
	for i, b := range l.Backends {
		field := fmt.Sprintf("backends[%d]", i)
		if b.UUID == "" {
			return fieldErrorf(field+".uuid", "missing")
		}
		if seen[b.AddrPort()] {
			return fieldErrorf(field, "backend %s is listed twice", b.AddrPort())
		}
		seen[b.AddrPort()] = true
		spec := BackendSpec{IP: b.IP, Port: b.Port, Weight: b.Weight}
		if b.Weight == 0 {
			return fieldErrorf(field+".weight", "must be 1..%d, got 0", MaxWeight)
		}
		if err := spec.Validate(l); err != nil {
			var fe *FieldError
			if errors.As(err, &fe) {
				return fieldErrorf(field+"."+fe.Field, "%s", fe.Msg)
			}
			return err
		}
	}
	return nil
}

// MaxNodes bounds a nodes selector; a cluster with more nodes than this
// selects them by label.
const MaxNodes = 64

// checkNodes checks a nodes selector: node names and key=value labels,
// by Kubernetes' rules, which config applies to cluster.node_name and
// cluster.labels.
func checkNodes(nodes []string) error {
	if len(nodes) > MaxNodes {
		return fieldErrorf("nodes", "at most %d entries (select many nodes by a label), got %d", MaxNodes, len(nodes))
	}
	seen := make(map[string]bool, len(nodes))
	for i, n := range nodes {
		field := fmt.Sprintf("nodes[%d]", i)
		if key, value, isLabel := strings.Cut(n, "="); isLabel {
			if errs := validation.IsQualifiedName(key); len(errs) > 0 {
				return fieldErrorf(field, "want a node name or a label as key=value, got %q: label name: %s", n, errs[0])
			}
			if errs := validation.IsValidLabelValue(value); len(errs) > 0 {
				return fieldErrorf(field, "want a node name or a label as key=value, got %q: label value: %s", n, errs[0])
			}
		} else if errs := validation.IsDNS1123Subdomain(n); len(errs) > 0 {
			return fieldErrorf(field, "want a node name or a label as key=value, got %q: %s", n, errs[0])
		}
		if seen[n] {
			return fieldErrorf(field, "%q is listed twice", n)
		}
		seen[n] = true
	}
	return nil
}
