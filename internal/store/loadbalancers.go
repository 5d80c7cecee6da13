package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/vipd/vipd/internal/config"
	"github.com/vipd/vipd/internal/lb"
)

// lbRecord is a load balancer on disk: one JSON value per UUID in the
// loadbalancers bucket. Its tags are the file format, so lb's Go field
// names can change without a schema bump. The address a load balancer
// holds is its allocation: there is no separate allocations bucket to
// disagree with it.
type lbRecord struct {
	Name       string          `json:"name"`
	Address    netip.Addr      `json:"address"`
	Pool       string          `json:"pool"`
	Port       uint16          `json:"port"`
	Protocol   lb.Protocol     `json:"protocol"`
	Mode       lb.Mode         `json:"mode"`
	Masquerade bool            `json:"masquerade"`
	OnEmpty    lb.OnEmpty      `json:"on_empty"`
	LocalPref  *uint32         `json:"local_pref,omitempty"`
	Ports      []uint16        `json:"ports,omitempty"`
	Nodes      []string        `json:"nodes,omitempty"`
	Check      *checkRecord    `json:"check,omitempty"`
	Backends   []backendRecord `json:"backends"`
	Created    time.Time       `json:"created"`
}

type checkRecord struct {
	Type      lb.CheckType  `json:"type"`
	Path      string        `json:"path,omitempty"`
	StatusMin int           `json:"status_min,omitempty"`
	StatusMax int           `json:"status_max,omitempty"`
	Interval  time.Duration `json:"interval_ns"`
	// FastInterval is absent from records written before it existed.
	FastInterval time.Duration `json:"fast_interval_ns,omitempty"`
	Timeout      time.Duration `json:"timeout_ns"`
	Rise         int           `json:"rise"`
	Fall         int           `json:"fall"`
}

type backendRecord struct {
	UUID   string     `json:"uuid"`
	IP     netip.Addr `json:"ip"`
	Port   uint16     `json:"port"`
	Weight uint32     `json:"weight"`
}

// LoadBalancers returns every stored load balancer. A record that does
// not decode is an error naming it, never skipped.
func (s *Store) LoadBalancers() ([]lb.LoadBalancer, error) {
	var out []lb.LoadBalancer
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketLoadBalancers).ForEach(func(k, v []byte) error {
			l, err := UnmarshalLoadBalancer(string(k), v)
			if err != nil {
				return err
			}
			out = append(out, l)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("state db %s: load balancers: %w", s.db.Path(), err)
	}
	return out, nil
}

// PutLoadBalancer writes l in one transaction, replacing any record with
// its UUID.
func (s *Store) PutLoadBalancer(l lb.LoadBalancer) error {
	if l.UUID == "" {
		return errors.New("state db: load balancer without a UUID")
	}
	v, err := MarshalLoadBalancer(l)
	if err != nil {
		return fmt.Errorf("state db: %w", err)
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketLoadBalancers).Put([]byte(l.UUID), v)
	})
	if err != nil {
		return fmt.Errorf("state db: load balancer %s: %w", l.UUID, err)
	}
	return nil
}

// DeleteLoadBalancer removes the record of load balancer id; a missing
// record is not an error.
func (s *Store) DeleteLoadBalancer(id string) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketLoadBalancers).Delete([]byte(id))
	})
	if err != nil {
		return fmt.Errorf("state db: delete load balancer %s: %w", id, err)
	}
	return nil
}

// MarshalLoadBalancer encodes l as its record: the same JSON in the state
// file and in the cluster store, so `vipd cluster import` copies records
// as they are.
func MarshalLoadBalancer(l lb.LoadBalancer) ([]byte, error) {
	v, err := json.Marshal(toRecord(l))
	if err != nil {
		return nil, fmt.Errorf("load balancer %s: %w", l.UUID, err)
	}
	return v, nil
}

func toRecord(l lb.LoadBalancer) lbRecord {
	s := l.Spec
	r := lbRecord{
		Name: s.Name, Address: s.Address, Pool: s.Pool, Port: s.Port, Protocol: s.Protocol, Mode: s.Mode,
		Masquerade: s.Masquerade != nil && *s.Masquerade, OnEmpty: s.OnEmpty, LocalPref: s.LocalPref, Ports: s.Ports,
		Nodes: s.Nodes, Backends: make([]backendRecord, len(l.Backends)), Created: l.Created,
	}
	if c := s.Check; c != nil {
		r.Check = &checkRecord{Type: c.Type, Path: c.Path, StatusMin: c.StatusMin, StatusMax: c.StatusMax,
			Interval: c.Interval, FastInterval: c.FastInterval, Timeout: c.Timeout, Rise: c.Rise, Fall: c.Fall}
	}
	for i, b := range l.Backends {
		r.Backends[i] = backendRecord{UUID: b.UUID, IP: b.IP, Port: b.Port, Weight: b.Weight}
	}
	return r
}

// UnmarshalLoadBalancer turns the record of load balancer id back into a
// load balancer and checks it as the API would have, so a hand-edited or
// damaged record fails here, by name.
func UnmarshalLoadBalancer(id string, v []byte) (lb.LoadBalancer, error) {
	var r lbRecord
	if err := json.Unmarshal(v, &r); err != nil {
		return lb.LoadBalancer{}, fmt.Errorf("load balancer %s: %w", id, err)
	}
	l := lb.LoadBalancer{UUID: id, Created: r.Created, Spec: lb.Spec{
		Name: r.Name, Address: r.Address, Pool: r.Pool, Port: r.Port, Protocol: r.Protocol, Mode: r.Mode,
		Masquerade: &r.Masquerade, OnEmpty: r.OnEmpty, LocalPref: r.LocalPref, Nodes: r.Nodes,
	}}
	if l.Spec.LocalPref == nil { // an older record: the default
		pref := uint32(config.DefaultLocalPref)
		l.Spec.LocalPref = &pref
	}
	if len(r.Ports) > 0 {
		l.Spec.Ports = r.Ports
	}
	if c := r.Check; c != nil {
		l.Spec.Check = &lb.Check{Type: c.Type, Path: c.Path, StatusMin: c.StatusMin, StatusMax: c.StatusMax,
			Interval: c.Interval, FastInterval: c.FastInterval, Timeout: c.Timeout, Rise: c.Rise, Fall: c.Fall}
		if c.FastInterval == 0 { // an older record: the default
			l.Spec.Check.FastInterval = config.DefaultFastInterval(c.Interval)
		}
	}
	for _, b := range r.Backends {
		l.Backends = append(l.Backends, lb.Backend{UUID: b.UUID, IP: b.IP, Port: b.Port, Weight: b.Weight})
	}
	if err := l.Validate(); err != nil {
		return lb.LoadBalancer{}, fmt.Errorf("load balancer %s (%q): %w", id, r.Name, err)
	}
	return l, nil
}
