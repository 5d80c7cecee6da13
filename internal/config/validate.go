package config

import (
	"fmt"
	"net/netip"
	"slices"
)

// validate applies the rules that span sections: unique names and
// addresses, the export guard and overlaps. Values that failed to decode
// are zero here and skipped: they have been reported already.
func validate(d *decoder, cfg *Config) {
	d.checkPeers(cfg.BGP.Peers)
	d.checkPrepends(cfg)
	owners := d.checkServices(cfg)
	if id := cfg.BGP.RouterID; id.IsValid() {
		if i, ok := owners[id]; ok {
			d.errorf("bgp.router_id", "%s is a VIP of %s, but a router ID must identify this node alone", id, serviceLabel(cfg, i))
		}
	}
	d.checkPools(cfg)
}

// firstOf remembers the index at which each key was first seen.
type firstOf[K comparable] map[K]int

// claim records key at i; if it was seen before, it returns that index.
func (f firstOf[K]) claim(key K, i int) (first int, dup bool) {
	if j, ok := f[key]; ok {
		return j, true
	}
	f[key] = i
	return i, false
}

func (d *decoder) checkPeers(peers []Peer) {
	addrs, names := firstOf[netip.Addr]{}, firstOf[string]{}
	for i, p := range peers {
		path := indexPath("bgp.peers", i)
		if j, dup := addrs.claim(p.Address, i); dup && p.Address.IsValid() {
			d.errorf(joinPath(path, "address"), "%s is also the address of bgp.peers[%d]", p.Address, j)
		}
		if j, dup := names.claim(p.Name, i); dup && p.Name != "" {
			d.errorf(joinPath(path, "name"), "%q is also the name of bgp.peers[%d]", p.Name, j)
		}
	}
}

// checkPrepends refuses AS-path prepends when every peer is iBGP: they are
// sent to eBGP peers only, so they could have no effect.
func (d *decoder) checkPrepends(cfg *Config) {
	if len(cfg.BGP.Peers) == 0 || slices.ContainsFunc(cfg.BGP.Peers, func(p Peer) bool { return !cfg.BGP.Internal(p) }) {
		return
	}
	for i, s := range cfg.Services {
		path := indexPath("services", i)
		for _, f := range []struct {
			key string
			n   int
		}{{"prepend", s.Prepend}, {"down_prepend", s.DownPrepend}} {
			if f.n > 0 {
				d.errorf(joinPath(path, f.key), "has no effect: every bgp peer is iBGP (asn %d, as bgp.asn), and AS-path prepends go to eBGP peers only; "+
					"on iBGP use local_pref and down_local_pref", cfg.BGP.ASN)
			}
		}
	}
}

// checkServices checks service names and VIPs (the export guard, one
// service per VIP). It returns the index of the service of each VIP.
func (d *decoder) checkServices(cfg *Config) map[netip.Addr]int {
	guard := allValid(cfg.BGP.AllowedPrefixes)
	names, owners := firstOf[string]{}, firstOf[netip.Addr]{}
	for i, s := range cfg.Services {
		path := indexPath("services", i)
		if j, dup := names.claim(s.Name, i); dup && s.Name != "" {
			d.errorf(joinPath(path, "name"), "%q is also the name of services[%d]", s.Name, j)
		}
		for k, vip := range s.VIPs {
			if !vip.IsValid() {
				continue
			}
			vipPath := indexPath(joinPath(path, "vips"), k)
			if guard && !slices.ContainsFunc(cfg.BGP.AllowedPrefixes, func(p netip.Prefix) bool { return p.Contains(vip) }) {
				d.errorf(vipPath, "%s is outside bgp.allowed_prefixes", vip)
			}
			if j, ok := peerIn(cfg.BGP.Peers, netip.PrefixFrom(vip, vip.BitLen())); ok {
				d.errorf(vipPath, "%s is the address of bgp.peers[%d]; announcing a router's own address to it breaks the session", vip, j)
			}
			switch j, dup := owners.claim(vip, i); {
			case !dup:
			case j == i:
				d.errorf(vipPath, "%s is listed twice", vip)
			default:
				d.errorf(vipPath, "%s is a VIP of both %s and %s; a VIP may belong to one service only",
					vip, serviceLabel(cfg, j), serviceLabel(cfg, i))
			}
		}
	}
	return owners
}

// checkPools keeps pools inside the export guard and apart from service
// VIPs and from each other.
func (d *decoder) checkPools(cfg *Config) {
	guard := allValid(cfg.BGP.AllowedPrefixes)
	names := firstOf[string]{}
	type placed struct {
		prefix netip.Prefix
		pool   int
	}
	var earlier []placed
	for i, pool := range cfg.Pools {
		path := indexPath("pools", i)
		if j, dup := names.claim(pool.Name, i); dup && pool.Name != "" {
			d.errorf(joinPath(path, "name"), "%q is also the name of pools[%d]", pool.Name, j)
		}
		for k, p := range pool.Prefixes {
			if !p.IsValid() {
				continue
			}
			pPath := indexPath(joinPath(path, "prefixes"), k)
			if guard && !slices.ContainsFunc(cfg.BGP.AllowedPrefixes, func(a netip.Prefix) bool { return covers(a, p) }) {
				d.errorf(pPath, "%s is outside bgp.allowed_prefixes", p)
			}
			if special, what, ok := specialIn(p); ok {
				d.errorf(pPath, "%s of pool %q overlaps %s, which is %s: a pool holds ordinary unicast addresses only", p, pool.Name, special, what)
			}
			if j, ok := peerIn(cfg.BGP.Peers, p); ok {
				d.errorf(pPath, "%s of pool %q contains %s, the address of bgp.peers[%d]", p, pool.Name, cfg.BGP.Peers[j].Address, j)
			}
			if vip, svc, ok := vipIn(cfg.Services, p); ok {
				d.errorf(pPath, "%s of pool %q contains %s, a VIP of %s; pools and VIPs must not overlap",
					p, pool.Name, vip, serviceLabel(cfg, svc))
			}
			for _, e := range earlier {
				if e.prefix.Overlaps(p) {
					d.errorf(pPath, "%s of pool %q overlaps %s of pool %q", p, pool.Name, e.prefix, cfg.Pools[e.pool].Name)
				}
			}
			earlier = append(earlier, placed{p, i})
		}
	}
}

// vipIn returns the first service VIP inside p.
func vipIn(services []Service, p netip.Prefix) (netip.Addr, int, bool) {
	for i, s := range services {
		for _, vip := range s.VIPs {
			if vip.IsValid() && p.Contains(vip) {
				return vip, i, true
			}
		}
	}
	return netip.Addr{}, 0, false
}

// peerIn returns the index of the first peer whose address is inside p.
func peerIn(peers []Peer, p netip.Prefix) (int, bool) {
	for i, peer := range peers {
		if peer.Address.IsValid() && p.Contains(peer.Address) {
			return i, true
		}
	}
	return 0, false
}

// covers reports whether all of p lies inside outer.
func covers(outer, p netip.Prefix) bool {
	return outer.Bits() <= p.Bits() && outer.Contains(p.Addr())
}

// allValid reports whether every prefix decoded; if one did not, the
// export guard would report VIPs it may well cover.
func allValid(prefixes []netip.Prefix) bool {
	return !slices.ContainsFunc(prefixes, func(p netip.Prefix) bool { return !p.IsValid() })
}

func serviceLabel(cfg *Config, i int) string {
	if name := cfg.Services[i].Name; name != "" {
		return fmt.Sprintf("service %q", name)
	}
	return fmt.Sprintf("services[%d]", i)
}
