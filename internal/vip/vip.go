// Package vip binds service addresses (VIPs) to network interfaces.
//
// A Binder takes the full desired set of addresses and makes the kernel
// match it, touching only addresses it added itself. It records an address
// in its Ledger before adding it, so a crash between the two cannot leave
// an address nobody remembers; it forgets one only after removing it. An
// address that is already on the interface without a record is the
// operator's and is never recorded, changed or removed. Set with an empty
// set removes everything vipd added, which is also how a restarted vipd
// cleans up what a crashed one left.
//
// Every VIP is a host address (/32 or /128) with global scope, so it can be
// a source address as it is for hand-made loopback VIPs. An IPv4 /32 gets
// no prefix route; IPv6 ones are added with noprefixroute to match, and
// with nodad so they are usable at once on links that run DAD.
package vip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"

	"github.com/vishvananda/netlink"

	"github.com/vipd/vipd/internal/store"
)

// Address is a VIP on a named interface. It is store's record type, so that
// *store.Store satisfies Ledger and store never depends on netlink.
type Address = store.Address

// Ledger remembers which addresses vipd added. *store.Store satisfies it.
// Each call is one atomic write; recording or forgetting twice is harmless.
type Ledger interface {
	AddedAddresses() ([]Address, error)
	RecordAddresses(addrs ...Address) error
	ForgetAddresses(addrs ...Address) error
}

// Binder reconciles addresses on interfaces with a desired set.
type Binder struct {
	ledger Ledger
	nl     *netlink.Handle
	log    *slog.Logger

	setMu   sync.Mutex           // one Set pass at a time
	foreign map[Address]struct{} // desired but the operator's; logged on first sight

	mu    sync.Mutex // guards bound
	bound []Address
}

// Option configures a Binder.
type Option func(*Binder)

// WithHandle makes the Binder use h, for example a handle bound to another
// network namespace. The default works in the caller's namespace.
func WithHandle(h *netlink.Handle) Option {
	return func(b *Binder) { b.nl = h }
}

// New returns a Binder that records its work in l. It touches nothing
// until Set is called. A nil log discards.
func New(l Ledger, log *slog.Logger, opts ...Option) *Binder {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	b := &Binder{
		ledger:  l,
		nl:      &netlink.Handle{}, // zero Handle: a socket per request, in the caller's namespace
		log:     log,
		foreign: make(map[Address]struct{}),
	}
	for _, o := range opts {
		o(b)
	}
	return b
}

// Set makes vipd's addresses equal desired: it adds the missing ones and
// removes those it added that are no longer desired. A repeat is a no-op.
// It carries on past a failed address and returns every failure joined,
// each naming its VIP and interface.
func (b *Binder) Set(ctx context.Context, desired []Address) error {
	b.setMu.Lock()
	defer b.setMu.Unlock()

	want, badErr := validate(desired)
	recorded, err := b.ledger.AddedAddresses()
	if err != nil {
		return errors.Join(badErr, fmt.Errorf("vip: read ledger: %w", err))
	}
	snap, err := b.observe(addressInterfaces(want, recorded))
	if err != nil {
		return errors.Join(badErr, fmt.Errorf("vip: %w", err))
	}
	p := makePlan(want, recorded, snap)
	b.noteForeign(p.foreign)
	bound, applyErr := b.apply(ctx, p, snap)

	b.mu.Lock()
	b.bound = bound
	b.mu.Unlock()
	return errors.Join(badErr, applyErr)
}

// Bound returns the addresses vipd has on interfaces as of the last Set,
// sorted by interface and address.
func (b *Binder) Bound() []Address {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.bound)
}

// noteForeign logs each operator-owned address once, when first seen.
func (b *Binder) noteForeign(foreign []Address) {
	seen := make(map[Address]struct{}, len(foreign))
	for _, a := range foreign {
		seen[a] = struct{}{}
		if _, ok := b.foreign[a]; !ok {
			b.log.Info("address already on interface; leaving it to the operator",
				"event", "vip_foreign", "vip", a.Addr, "interface", a.Interface)
		}
	}
	b.foreign = seen
}
