package config

import (
	"cmp"
	"math"
	"net/netip"
	"slices"
	"time"

	"go.yaml.in/yaml/v3"
)

// Defaults that SPEC §2 fixes.
const (
	DefaultStateDir      = "/var/lib/vipd"
	DefaultSocket        = "/run/vipd/vipd.sock"
	DefaultMetricsListen = "127.0.0.1:9477"

	defaultPeerPort  = 179
	defaultHoldTime  = 9 * time.Second
	defaultBFDTx     = 300 * time.Millisecond
	defaultBFDMult   = 3
	defaultBFDMinTTL = 1 // any TTL: BIRD 2 sends multihop BFD with TTL 64, FRR 255
	defaultInterface = "lo"
	defaultInterval  = time.Second
	defaultTimeout   = time.Second
	// defaultFastInterval is ExaBGP healthcheck's --fast-interval default.
	defaultFastInterval = time.Second
	defaultRiseFall     = 2
	minInterval         = 10 * time.Millisecond
	maxBFDInterval      = time.Hour
	maxPrepend          = 32
	maxMD5KeyLen        = 80 // TCP_MD5SIG_MAXKEYLEN
	// maxShutdownGrace bounds bgp.shutdown_grace. vipd asks systemd for
	// the grace on top of the unit's stop timeout (EXTEND_TIMEOUT_USEC);
	// routers that honour GRACEFUL_SHUTDOWN move traffic in seconds.
	maxShutdownGrace = 10 * time.Minute
)

// DefaultFastInterval is a check's fast interval when none is set: the
// smaller of ExaBGP healthcheck's --fast-interval default and interval.
// Services and load-balancer checks share it.
func DefaultFastInterval(interval time.Duration) time.Duration {
	return min(defaultFastInterval, interval)
}

// Parse turns a YAML config into a defaulted, validated *Config. It reads
// no files: password_file is left for Load to resolve. On failure it
// returns an *Errors that lists every problem found, in line order.
//
// Besides SPEC §2, these rules hold:
//   - A null value ("key:" or "key: ~") means "not set": the default
//     applies. So metrics.listen: "" disables metrics, but a bare
//     "listen:" keeps the default.
//   - A VIP is one address, written bare or as a host prefix (/32, /128);
//     other prefix lengths, zoned, IPv4-mapped, unspecified, multicast and
//     link-local addresses are refused.
//   - File paths (state_dir, api.socket, api.token_file, password_file,
//     maintenance_file) must be absolute, so they do not depend on the
//     daemon's working directory.
//   - Families are kept in the order ipv4, ipv6 whatever the file says.
//   - A peer with ttl > 1 counts as multihop for its BFD default.
//   - BFD defaults are filled in even when BFD is off; min_ttl is set (1,
//     any TTL) for multihop BFD only.
//   - bgp.router_id must not be a VIP: every node announces the VIPs, but
//     a router ID must be unique to its node.
//   - YAML anchors, aliases and merge keys ("<<: *base") work; a document
//     whose aliases expand beyond maxAliasGrowth nodes is refused.
func Parse(data []byte) (*Config, error) {
	cfg, _, err := parse(data)
	return cfg, err
}

// parse is Parse that also returns the line of every field path, which
// Load needs to place its own errors.
func parse(data []byte) (*Config, map[string]int, error) {
	root, err := readDocument(data)
	if err != nil {
		return nil, nil, err
	}
	d := &decoder{lines: map[string]int{}}
	cfg := d.config(root)
	validate(d, cfg)
	if len(d.errs) > 0 {
		slices.SortStableFunc(d.errs, func(a, b *FieldError) int { return cmp.Compare(a.Line, b.Line) })
		return nil, nil, &Errors{List: d.errs}
	}
	return cfg, d.lines, nil
}

func (d *decoder) config(root *yaml.Node) *Config {
	cfg := &Config{
		StateDir: DefaultStateDir,
		API:      API{Socket: DefaultSocket},
		Metrics:  Metrics{Listen: DefaultMetricsListen},
	}
	if root == nil || isNull(root) {
		d.errorf("bgp", "required")
		return cfg
	}
	d.lines[""] = root.Line
	set := d.object(root, "", map[string]field{
		"bgp":        d.bgp(&cfg.BGP),
		"services":   listOf(d, &cfg.Services, d.service),
		"pools":      listOf(d, &cfg.Pools, d.pool),
		"state_dir":  text(d, &cfg.StateDir, "an absolute path", parseAbsPath),
		"dataplane":  d.dataPlane(&cfg.DataPlane),
		"api":        d.api(&cfg.API),
		"metrics":    d.metrics(&cfg.Metrics),
		"kubernetes": d.kubernetes(&cfg.Kubernetes),
		"cluster":    d.cluster(&cfg.Cluster),
	})
	d.require("", set, "bgp")
	return cfg
}

func (d *decoder) asn(dst *uint32) field { return intField(d, dst, 1, math.MaxUint32) }

func (d *decoder) bgp(b *BGP) field {
	return func(v *yaml.Node, path string) {
		b.ListenPort = -1
		set := d.object(v, path, map[string]field{
			"asn":               d.asn(&b.ASN),
			"router_id":         text(d, &b.RouterID, "an IPv4 address", parseRouterID),
			"listen_port":       d.listenPort(&b.ListenPort),
			"allowed_prefixes":  listOf(d, &b.AllowedPrefixes, d.prefix),
			"communities":       listOf(d, &b.Communities, d.community),
			"large_communities": listOf(d, &b.LargeCommunities, d.largeCommunity),
			"shutdown_grace":    text(d, &b.ShutdownGrace, "a duration", parseShutdownGrace),
			"graceful_restart":  d.boolean(&b.GracefulRestart),
			"peers":             listOf(d, &b.Peers, d.peer),
		})
		d.require(path, set, "asn")
	}
}

func (d *decoder) listenPort(dst *int32) field {
	return func(v *yaml.Node, path string) {
		const bad = -2 // left in place when intField reports an error
		port := int32(bad)
		intField(d, &port, -1, 65535)(v, path)
		switch port {
		case bad:
		case 0:
			d.errorf(path, "must be -1 (only dial out) or a port 1..65535, got 0")
		default:
			*dst = port
		}
	}
}

func (d *decoder) prefix(dst *netip.Prefix) field {
	return text(d, dst, "a prefix", parsePrefix)
}

func (d *decoder) community(dst *Community) field {
	return text(d, dst, "a community", parseCommunity)
}

func (d *decoder) largeCommunity(dst *LargeCommunity) field {
	return text(d, dst, "a large community", parseLargeCommunity)
}

func (d *decoder) peer(p *Peer) field {
	return func(v *yaml.Node, path string) {
		*p = Peer{Port: defaultPeerPort, HoldTime: defaultHoldTime, Families: []Family{IPv4, IPv6}}
		var bfd *yaml.Node // decoded last: its defaults depend on multihop
		set := d.object(v, path, map[string]field{
			"name":           d.str(&p.Name),
			"address":        text(d, &p.Address, "an IP address", parsePeerAddress),
			"asn":            d.asn(&p.ASN),
			"port":           intField(d, &p.Port, 1, 65535),
			"password":       d.str((*string)(&p.Password)),
			"password_file":  text(d, &p.PasswordFile, "an absolute path", parseAbsPath),
			"multihop":       d.boolean(&p.Multihop),
			"ttl":            intField(d, &p.TTL, 1, 255),
			"source_address": text(d, &p.SourceAddress, "an IP address", parseAddr),
			"hold_time":      text(d, &p.HoldTime, "a duration", parseHoldTime),
			"families":       d.families(&p.Families),
			"ipv6_next_hop":  text(d, &p.IPv6NextHop, "an IPv6 address", parseNextHop),
			"bfd":            func(v *yaml.Node, _ string) { bfd = v },
		})
		if set == nil {
			return
		}
		d.require(path, set, "address", "asn")
		if p.Name == "" && p.Address.IsValid() {
			p.Name = p.Address.String()
		}
		d.checkPeer(p, path, set)
		p.BFD = d.bfd(bfd, joinPath(path, "bfd"), p.Multihop || p.TTL > 1)
	}
}

// checkPeer applies the rules that tie a peer's fields together.
func (d *decoder) checkPeer(p *Peer, path string, set keys) {
	switch {
	case set.has("password") && set.has("password_file"):
		d.errorf(joinPath(path, "password_file"), "set password or password_file, not both")
	case set.ok("password") && p.Password == "":
		d.errorf(joinPath(path, "password"), "must not be empty (leave it out for no password)")
	case len(p.Password) > maxMD5KeyLen:
		d.errorf(joinPath(path, "password"), "a TCP-MD5 key has at most %d bytes, got %d", maxMD5KeyLen, len(p.Password))
	}
	if p.Multihop && set.has("ttl") {
		d.errorf(joinPath(path, "ttl"), "set multihop or ttl, not both")
	}
	if p.SourceAddress.IsValid() && p.Address.IsValid() && p.SourceAddress.Is4() != p.Address.Is4() {
		d.errorf(joinPath(path, "source_address"), "%s is not in the same address family as the peer address %s", p.SourceAddress, p.Address)
	}
}

// families reads a non-empty set of address families, kept in the
// canonical order ipv4, ipv6 so that equal sets compare equal.
func (d *decoder) families(dst *[]Family) field {
	return func(v *yaml.Node, path string) {
		var list []Family
		listOf(d, &list, d.family)(v, path)
		if len(list) == 0 && resolve(v).Kind == yaml.SequenceNode {
			d.errorf(path, "must list ipv4, ipv6 or both")
			return
		}
		seen := map[Family]bool{}
		for i, f := range list {
			if f != "" && seen[f] {
				d.errorf(indexPath(path, i), "%s is listed twice", f)
			}
			seen[f] = true
		}
		*dst = nil
		for _, f := range []Family{IPv4, IPv6} {
			if seen[f] {
				*dst = append(*dst, f)
			}
		}
	}
}

func (d *decoder) family(dst *Family) field { return text(d, dst, "ipv4 or ipv6", parseFamily) }

// bfdAuth reads a peer's bfd.auth block.
func (d *decoder) bfdAuth(a *BFDAuth) field {
	return func(v *yaml.Node, path string) {
		a.KeyID = 1
		set := d.object(v, path, map[string]field{
			"type":     text(d, &a.Type, "a BFD authentication type", parseBFDAuthType),
			"key_id":   intField(d, &a.KeyID, 0, 255),
			"key":      d.str((*string)(&a.Key)),
			"key_file": text(d, &a.KeyFile, "an absolute path", parseAbsPath),
		})
		if set == nil {
			return
		}
		d.require(path, set, "type")
		switch {
		case set.has("key") && set.has("key_file"):
			d.errorf(joinPath(path, "key_file"), "set key or key_file, not both")
		case !set.has("key") && !set.has("key_file"):
			d.errorf(path, "key or key_file is required")
		case set.ok("key") && a.Key == "":
			d.errorf(joinPath(path, "key"), "must not be empty")
		case set.ok("key") && a.Type != "" && len(a.Key) > a.Type.MaxKeyLen():
			d.errorf(joinPath(path, "key"), "a %s key has at most %d bytes, got %d", a.Type, a.Type.MaxKeyLen(), len(a.Key))
		}
	}
}

// bfd reads a peer's bfd block (v may be nil). Defaults are filled in even
// when BFD is off, so that the normalized config is explicit.
func (d *decoder) bfd(v *yaml.Node, path string, peerMultihop bool) BFD {
	b := BFD{Multihop: peerMultihop, MinTx: defaultBFDTx, MinRx: defaultBFDTx, Multiplier: defaultBFDMult}
	var set keys
	if v != nil {
		interval := durationIn(minInterval, maxBFDInterval)
		set = d.object(v, path, map[string]field{
			"enabled":    d.boolean(&b.Enabled),
			"multihop":   d.boolean(&b.Multihop),
			"min_tx":     text(d, &b.MinTx, "a duration", interval),
			"min_rx":     text(d, &b.MinRx, "a duration", interval),
			"multiplier": intField(d, &b.Multiplier, 1, 255),
			"min_ttl":    intField(d, &b.MinTTL, 1, 255),
			"auth":       d.bfdAuth(&b.Auth),
		})
	}
	switch {
	case !b.Multihop && set.has("min_ttl"):
		d.errorf(joinPath(path, "min_ttl"), "only allowed with multihop BFD (single-hop BFD always uses TTL 255)")
	case b.Multihop && !set.has("min_ttl"):
		b.MinTTL = defaultBFDMinTTL
	}
	return b
}
