package testnet

import (
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// birdTimeLayout is `timeformat ... iso long` in BIRD's local time.
const birdTimeLayout = "2006-01-02 15:04:05"

// birdNotFound is birdc's answer when it has no route for the network.
const birdNotFound = "Network not found"

// birdSet matches one member of a BIRD community or large-community list:
// "(64532,100)" or "(1, 2, 3)".
var birdSet = regexp.MustCompile(`\(([^()]*)\)`)

// parseBirdRoutes reads `birdc show route all NET` output and returns the
// BGP paths for exactly prefix. peers maps BGP protocol names to neighbours.
func parseBirdRoutes(out string, prefix netip.Prefix, peers map[string]netip.Addr) ([]RouteInfo, error) {
	var (
		routes []RouteInfo
		net    string // the network of the route being read
		cur    *RouteInfo
		isBGP  bool
	)
	flush := func() {
		if cur != nil && isBGP && net == prefix.String() {
			routes = append(routes, *cur)
		}
		cur, isBGP = nil, false
	}
	for line := range strings.Lines(out) {
		line = strings.TrimRight(line, "\r\n")
		switch {
		case line == "" || strings.HasPrefix(line, "BIRD ") || strings.HasPrefix(line, "Table "):
		case line == birdNotFound:
			return nil, nil
		case strings.HasPrefix(line, "\t"):
			if cur == nil {
				return nil, fmt.Errorf("attribute before any route: %q", line)
			}
			bgp, err := parseBirdAttr(cur, strings.TrimSpace(line))
			if err != nil {
				return nil, err
			}
			isBGP = isBGP || bgp
		default: // a route header; continuation headers start with spaces
			flush()
			if !strings.HasPrefix(line, " ") {
				net = strings.Fields(line)[0]
			}
			r, err := parseBirdHeader(line, peers)
			if err != nil {
				return nil, err
			}
			cur = &r
		}
	}
	flush()
	return routes, nil
}

// parseBirdHeader reads "NET unicast [proto time ...] * (100) [AS1i]".
func parseBirdHeader(line string, peers map[string]netip.Addr) (RouteInfo, error) {
	open := strings.IndexByte(line, '[')
	end := strings.IndexByte(line, ']')
	if open < 0 || end < open {
		return RouteInfo{}, fmt.Errorf("route header without [protocol]: %q", line)
	}
	var r RouteInfo
	if fields := strings.Fields(line[open+1 : end]); len(fields) > 0 {
		r.FromPeer = peers[fields[0]]
	}
	after := strings.Fields(line[end+1:])
	r.Best = len(after) > 0 && after[0] == "*"
	return r, nil
}

// parseBirdAttr applies one "Key: value" line to r and reports whether it
// marks a BGP route.
func parseBirdAttr(r *RouteInfo, line string) (bool, error) {
	key, value, ok := strings.Cut(line, ":")
	if !ok {
		return false, nil // "via X on lan0" and similar
	}
	value = strings.TrimSpace(value)
	var err error
	switch key {
	case "Type":
		return strings.HasPrefix(value, "BGP"), nil
	case "BGP.next_hop":
		if fields := strings.Fields(value); len(fields) > 0 {
			r.NextHop, err = netip.ParseAddr(fields[0])
		}
	case "BGP.med":
		var med uint64
		med, err = strconv.ParseUint(value, 10, 32)
		r.MED = uint32(med)
	case "BGP.local_pref":
		var pref uint64
		pref, err = strconv.ParseUint(value, 10, 32)
		r.LocalPref = uint32(pref)
	case "BGP.as_path":
		r.ASPath, err = parseASPath(strings.NewReplacer("{", " ", "}", " ").Replace(value))
	case "BGP.community":
		r.Communities = parseBirdSets(value)
	case "BGP.large_community":
		r.LargeCommunities = parseBirdSets(value)
	}
	if err != nil {
		return false, fmt.Errorf("%s: %w", key, err)
	}
	return strings.HasPrefix(key, "BGP."), nil
}

// parseASPath reads space-separated AS numbers.
func parseASPath(s string) ([]uint32, error) {
	var path []uint32
	for _, f := range strings.Fields(s) {
		asn, err := strconv.ParseUint(f, 10, 32)
		if err != nil {
			return nil, err
		}
		path = append(path, uint32(asn))
	}
	return path, nil
}

// parseBirdSets turns "(1,2) (3,4)" into ["1:2", "3:4"] and
// "(1, 2, 3)" into ["1:2:3"].
func parseBirdSets(s string) []string {
	var out []string
	for _, m := range birdSet.FindAllStringSubmatch(s, -1) {
		out = append(out, strings.ReplaceAll(strings.ReplaceAll(m[1], " ", ""), ",", ":"))
	}
	return out
}

// parseBirdProtocols reads `birdc show protocols` output (with `timeformat
// protocol iso long`) and returns the sessions of the BGP protocols in peers.
//
//	Name   Proto  Table  State  Since                Info
//	peer1  BGP    ---    up     2026-11-22 20:17:00  Established
//	peer2  BGP    ---    start  2026-11-22 20:17:51  Active        Received: ...
func parseBirdProtocols(out string, peers map[string]netip.Addr) ([]Session, error) {
	var sessions []Session
	for line := range strings.Lines(out) {
		f := strings.Fields(line)
		if len(f) < 6 || f[1] != "BGP" {
			continue
		}
		addr, ok := peers[f[0]]
		if !ok {
			continue
		}
		s := Session{Neighbor: addr, State: "Idle"}
		if len(f) > 6 {
			s.State = f[6]
			s.Info = strings.Join(f[7:], " ")
		}
		if s.State == Established {
			since, err := time.ParseInLocation(birdTimeLayout, f[4]+" "+f[5], time.Local)
			if err != nil {
				return nil, fmt.Errorf("protocol %s since: %w", f[0], err)
			}
			s.Since = since
		}
		sessions = append(sessions, s)
	}
	return sessions, nil
}
