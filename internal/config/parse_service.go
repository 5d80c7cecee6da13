package config

import (
	"maps"
	"math"
	"net/netip"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

func (d *decoder) service(s *Service) field {
	return func(v *yaml.Node, path string) {
		*s = Service{Interface: defaultInterface, Bind: true, Rise: defaultRiseFall, Fall: defaultRiseFall, OnDown: OnDownWithdraw,
			LocalPref: DefaultLocalPref}
		set := d.object(v, path, map[string]field{
			"name":              text(d, &s.Name, "a name", parseName),
			"vips":              listOf(d, &s.VIPs, d.vip),
			"interface":         text(d, &s.Interface, "an interface name", parseInterface),
			"bind":              d.boolean(&s.Bind),
			"checks":            listOf(d, &s.Checks, d.check),
			"interval":          text(d, &s.Interval, "a duration", durationIn(minInterval, math.MaxInt64)),
			"fast_interval":     text(d, &s.FastInterval, "a duration", durationIn(minInterval, math.MaxInt64)),
			"timeout":           text(d, &s.Timeout, "a duration", parseDuration),
			"rise":              intField(d, &s.Rise, 1, math.MaxInt64),
			"fall":              intField(d, &s.Fall, 1, math.MaxInt64),
			"on_down":           text(d, &s.OnDown, "withdraw or degrade", parseOnDown),
			"med":               intField(d, &s.MED, 0, math.MaxUint32),
			"down_med":          intField(d, &s.DownMED, 0, math.MaxUint32),
			"prepend":           intField(d, &s.Prepend, 0, maxPrepend),
			"down_prepend":      intField(d, &s.DownPrepend, 0, maxPrepend),
			"local_pref":        intField(d, &s.LocalPref, 0, math.MaxUint32),
			"down_local_pref":   intField(d, &s.DownLocalPref, 0, math.MaxUint32),
			"communities":       listOf(d, &s.Communities, d.community),
			"large_communities": listOf(d, &s.LargeCommunities, d.largeCommunity),
			"maintenance_file":  text(d, &s.MaintenanceFile, "an absolute path", parseAbsPath),
			"ports":             d.ports(&s.Ports),
		})
		if set == nil {
			return
		}
		d.require(path, set, "name", "vips")
		if !set.has("down_local_pref") {
			s.DownLocalPref = s.LocalPref
		}
		if set.ok("vips") && len(s.VIPs) == 0 {
			d.errorf(joinPath(path, "vips"), "must list at least one address")
		}
		d.serviceTimers(s, path, set)
	}
}

// serviceTimers defaults interval, fast_interval and timeout and checks
// that a probe ends before the next one starts.
func (d *decoder) serviceTimers(s *Service, path string, set keys) {
	if !set.has("interval") {
		s.Interval = defaultInterval
	}
	switch {
	case !set.has("fast_interval"):
		s.FastInterval = DefaultFastInterval(s.Interval)
	case s.Interval > 0 && s.FastInterval > s.Interval: // Interval is 0 if it was bad
		d.errorf(joinPath(path, "fast_interval"), "must not be longer than interval (%s), got %s", s.Interval, s.FastInterval)
	}
	switch {
	case !set.has("timeout"):
		// Bounded by the interval the rounds run at when they run fastest.
		s.Timeout = min(defaultTimeout, s.FastInterval, s.Interval)
	case set.ok("timeout") && s.Timeout == 0:
		d.errorf(joinPath(path, "timeout"), "must be more than 0")
	case s.Interval > 0 && s.Timeout > s.Interval: // Interval is 0 if it was bad
		d.errorf(joinPath(path, "timeout"), "must not be longer than interval (%s), got %s", s.Interval, s.Timeout)
	}
}

func (d *decoder) vip(dst *netip.Addr) field { return text(d, dst, "an IP address", parseVIP) }

func (d *decoder) check(c *Check) field {
	return func(v *yaml.Node, path string) {
		set := d.object(v, path, map[string]field{
			"http":    d.httpCheck(&c.HTTP),
			"tcp":     d.tcpCheck(&c.TCP),
			"exec":    d.execCheck(&c.Exec),
			"listen":  d.listenCheck(&c.Listen),
			"process": d.processCheck(&c.Process),
		})
		switch {
		case set == nil || len(set) == 1:
		case len(set) == 0:
			d.errorf(path, "want one of http, tcp, exec, listen, process")
		default:
			d.errorf(path, "want exactly one of http, tcp, exec, listen, process, got %s", strings.Join(slices.Sorted(maps.Keys(set)), " and "))
		}
	}
}

func (d *decoder) httpCheck(dst **HTTPCheck) field {
	return func(v *yaml.Node, path string) {
		h := &HTTPCheck{StatusMin: 200, StatusMax: 299}
		status := StatusRange{h.StatusMin, h.StatusMax}
		set := d.object(v, path, map[string]field{
			"url":           text(d, &h.URL, "a URL", parseCheckURL),
			"expect_status": text(d, &status, "a status code or range", ParseStatusRange),
		})
		d.require(path, set, "url")
		h.StatusMin, h.StatusMax = status.Min, status.Max
		*dst = h
	}
}

func (d *decoder) tcpCheck(dst **TCPCheck) field {
	return func(v *yaml.Node, path string) {
		t := &TCPCheck{}
		set := d.object(v, path, map[string]field{
			"address": text(d, &t.Address, "host:port", func(s string) (string, error) { return parseHostPort(s, true) }),
		})
		d.require(path, set, "address")
		*dst = t
	}
}

func (d *decoder) execCheck(dst **ExecCheck) field {
	return func(v *yaml.Node, path string) {
		e := &ExecCheck{}
		set := d.object(v, path, map[string]field{
			"command": listOf(d, &e.Command, d.str),
		})
		d.require(path, set, "command")
		cmdPath := joinPath(path, "command")
		switch {
		case set.ok("command") && len(e.Command) == 0:
			d.errorf(cmdPath, "must name a program to run")
		case len(e.Command) > 0 && e.Command[0] == "":
			d.errorf(indexPath(cmdPath, 0), "must name a program to run, got \"\"")
		}
		for i, arg := range e.Command {
			if strings.ContainsRune(arg, 0) {
				d.errorf(indexPath(cmdPath, i), "must not contain a NUL byte")
			}
		}
		*dst = e
	}
}

func (d *decoder) listenCheck(dst **ListenCheck) field {
	return func(v *yaml.Node, path string) {
		l := &ListenCheck{}
		set := d.object(v, path, map[string]field{
			"port":    intField(d, &l.Port, 1, math.MaxUint16),
			"address": text(d, &l.Address, "an IP address", parseAddr),
		})
		d.require(path, set, "port")
		*dst = l
	}
}

func (d *decoder) processCheck(dst **ProcessCheck) field {
	return func(v *yaml.Node, path string) {
		p := &ProcessCheck{}
		set := d.object(v, path, map[string]field{
			"pid_file": text(d, &p.PIDFile, "an absolute path", parseAbsPath),
			"name":     text(d, &p.Name, "a process name", parseProcessName),
		})
		switch {
		case set == nil:
		case set.has("pid_file") && set.has("name"):
			d.errorf(path, "want pid_file or name, not both")
		case !set.has("pid_file") && !set.has("name"):
			d.errorf(path, "want pid_file or name")
		}
		*dst = p
	}
}

func (d *decoder) pool(p *Pool) field {
	return func(v *yaml.Node, path string) {
		set := d.object(v, path, map[string]field{
			"name":     text(d, &p.Name, "a name", parseName),
			"prefixes": listOf(d, &p.Prefixes, d.prefix),
		})
		d.require(path, set, "name", "prefixes")
		if set.ok("prefixes") && len(p.Prefixes) == 0 {
			d.errorf(joinPath(path, "prefixes"), "must list at least one prefix")
		}
	}
}

func (d *decoder) api(a *API) field {
	return func(v *yaml.Node, path string) {
		d.object(v, path, map[string]field{
			"socket":     text(d, &a.Socket, "an absolute path", parseSocketPath),
			"listen":     text(d, &a.Listen, "host:port", parseListen),
			"token_file": text(d, &a.TokenFile, "an absolute path", parseAbsPath),
			"tls_cert":   text(d, &a.TLSCert, "an absolute path", parseAbsPath),
			"tls_key":    text(d, &a.TLSKey, "an absolute path", parseAbsPath),
		})
		if a.Listen != "" && a.TokenFile == "" {
			d.errorf(joinPath(path, "token_file"), "required when api.listen is set: the TCP API needs a token")
		}
		switch {
		case a.TLSCert != "" && a.TLSKey == "":
			d.errorf(joinPath(path, "tls_key"), "required with tls_cert")
		case a.TLSKey != "" && a.TLSCert == "":
			d.errorf(joinPath(path, "tls_cert"), "required with tls_key")
		case a.TLSCert != "" && a.Listen == "":
			d.errorf(joinPath(path, "tls_cert"), "needs api.listen: TLS is for the TCP listener")
		}
	}
}

// ports reads a list of distinct TCP/UDP ports.
func (d *decoder) ports(dst *[]uint16) field {
	list := listOf(d, dst, func(p *uint16) field { return intField(d, p, 1, math.MaxUint16) })
	return func(v *yaml.Node, path string) {
		list(v, path)
		seen := make(map[uint16]bool)
		for i, p := range *dst {
			if seen[p] {
				d.errorf(indexPath(path, i), "port %d is listed twice", p)
			}
			seen[p] = true
		}
	}
}

func (d *decoder) metrics(m *Metrics) field {
	return func(v *yaml.Node, path string) {
		d.object(v, path, map[string]field{
			"listen": text(d, &m.Listen, "host:port", parseListen),
		})
	}
}

func (d *decoder) kubernetes(dst **Kubernetes) field {
	return func(v *yaml.Node, path string) {
		k := &Kubernetes{ExternalIPs: true, LoadBalancers: true, Interface: "lo", LeaseDuration: 15 * time.Second}
		*dst = k
		d.object(v, path, map[string]field{
			"kubeconfig":          text(d, &k.Kubeconfig, "an absolute path", orUnset(parseAbsPath)),
			"node_name":           text(d, &k.NodeName, "a Kubernetes node name", orUnset(parseDNSSubdomain)),
			"namespace":           text(d, &k.Namespace, "a Kubernetes namespace", orUnset(parseDNSLabel)),
			"external_ips":        d.boolean(&k.ExternalIPs),
			"load_balancers":      d.boolean(&k.LoadBalancers),
			"load_balancer_class": text(d, &k.LoadBalancerClass, "a load balancer class", orUnset(parseQualifiedName)),
			"interface":           text(d, &k.Interface, "an interface name", parseInterface),
			"lease_duration":      text(d, &k.LeaseDuration, "a duration from 3s to 10m", parseLeaseDuration),
		})
	}
}
