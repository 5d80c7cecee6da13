package store

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	bolt "go.etcd.io/bbolt"
)

// Address is an address vipd added to an interface, and so may remove.
//
// The type lives here, not in package vip, so that store stays a leaf
// (bbolt only, no netlink); vip aliases it and *Store satisfies vip.Ledger.
type Address struct {
	Addr      netip.Addr
	Interface string
}

func (a Address) String() string { return a.Addr.String() + " on " + a.Interface }

// maxInterfaceLen is Linux's IFNAMSIZ less the terminating NUL.
const maxInterfaceLen = 15

// Validate reports whether a can be stored and bound: a valid IP without
// a zone on a named interface.
func (a Address) Validate() error {
	switch {
	case !a.Addr.IsValid():
		return errors.New("invalid IP address")
	case a.Addr.Zone() != "":
		return fmt.Errorf("address %s has a zone", a.Addr)
	case a.Interface == "":
		return errors.New("no interface")
	case len(a.Interface) > maxInterfaceLen:
		return fmt.Errorf("interface name %q is longer than %d bytes", a.Interface, maxInterfaceLen)
	case strings.ContainsAny(a.Interface, " \t\n\r/:"):
		return fmt.Errorf("interface name %q has a space, '/' or ':'", a.Interface)
	}
	return nil
}

// addressKey encodes a as "<interface> <addr>", readable in bbolt tools.
// Interface names cannot hold a space, so the first space splits the key.
func addressKey(a Address) []byte {
	return []byte(a.Interface + " " + a.Addr.String())
}

func parseAddressKey(key []byte) (Address, error) {
	iface, addr, ok := strings.Cut(string(key), " ")
	if !ok {
		return Address{}, fmt.Errorf("address key %q: no separator", key)
	}
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return Address{}, fmt.Errorf("address key %q: %w", key, err)
	}
	if ip.String() != addr {
		return Address{}, fmt.Errorf("address key %q: %s is not in canonical form", key, addr)
	}
	a := Address{Addr: ip, Interface: iface}
	if err := a.Validate(); err != nil {
		return Address{}, fmt.Errorf("address key %q: %w", key, err)
	}
	return a, nil
}

// AddedAddresses returns every recorded address, sorted by interface, then
// by address text.
func (s *Store) AddedAddresses() ([]Address, error) {
	var out []Address
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketAddresses).ForEach(func(k, _ []byte) error {
			a, err := parseAddressKey(k)
			if err != nil {
				return err
			}
			out = append(out, a)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("state db: read addresses: %w", err)
	}
	return out, nil
}

// RecordAddresses records addrs as added by vipd, in one transaction.
// Recording an address twice is not an error.
func (s *Store) RecordAddresses(addrs ...Address) error {
	for _, a := range addrs {
		if err := a.Validate(); err != nil {
			return fmt.Errorf("state db: record %s: %w", a, err)
		}
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAddresses)
		for _, a := range addrs {
			if err := b.Put(addressKey(a), nil); err != nil {
				return fmt.Errorf("record %s: %w", a, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("state db: %w", err)
	}
	return nil
}

// ForgetAddresses drops addrs from the record, in one transaction.
// Forgetting an address that is not recorded is not an error.
func (s *Store) ForgetAddresses(addrs ...Address) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAddresses)
		for _, a := range addrs {
			if err := b.Delete(addressKey(a)); err != nil {
				return fmt.Errorf("forget %s: %w", a, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("state db: %w", err)
	}
	return nil
}
