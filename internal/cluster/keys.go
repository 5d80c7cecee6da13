package cluster

import (
	"net/netip"
	"strings"
)

// keys is the cluster's key prefix, and spells every key under it.
type keys string

func (k keys) all() string                 { return string(k) + "/" }
func (k keys) lbs() string                 { return string(k) + "/lb/" }
func (k keys) lb(id string) string         { return k.lbs() + id }
func (k keys) name(name string) string     { return string(k) + "/name/" + name }
func (k keys) address(a netip.Addr) string { return string(k) + "/address/" + a.String() }
func (k keys) drains() string              { return string(k) + "/drain/" }
func (k keys) drain(name string) string    { return k.drains() + name }
func (k keys) nodes() string               { return string(k) + "/node/" }
func (k keys) node(name string) string     { return k.nodes() + name }

// kind splits a key into what it holds ("lb", "drain", "node", ...) and
// its identifier.
func (k keys) kind(key string) (kind, id string) {
	rest, ok := strings.CutPrefix(key, k.all())
	if !ok {
		return "", ""
	}
	kind, id, _ = strings.Cut(rest, "/")
	return kind, id
}
