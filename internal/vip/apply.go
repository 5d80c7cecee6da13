package vip

import (
	"context"
	"errors"
	"fmt"
)

// apply carries out p and returns what is bound afterwards. Records are
// written before adds and dropped after removals, in one ledger write
// each, so the ledger never misses an address that might be on a link.
func (b *Binder) apply(ctx context.Context, p plan, snap *snapshot) ([]Address, error) {
	errs := p.failed
	bound := append([]Address(nil), p.keep...)
	forget := append([]Address(nil), p.forget...)

	if len(p.add) > 0 {
		if err := b.ledger.RecordAddresses(p.add...); err != nil {
			// Adding without a record could leak addresses: skip the adds.
			errs = append(errs, fmt.Errorf("vip: record %d addresses before adding: %w", len(p.add), err))
			p.add = nil
		}
	}
	for _, a := range p.add {
		if err := ctx.Err(); err != nil {
			forget = append(forget, a) // recorded above, never added
			continue
		}
		added, err := b.add(a, snap)
		if err != nil {
			errs = append(errs, err)
		}
		if added {
			bound = append(bound, a)
		} else {
			forget = append(forget, a)
		}
	}
	for _, a := range p.remove {
		if ctx.Err() != nil {
			bound = append(bound, a) // still there, still recorded
			continue
		}
		gone, err := b.remove(a, snap)
		if err != nil {
			errs = append(errs, err)
		}
		if gone {
			forget = append(forget, a)
		} else {
			bound = append(bound, a)
		}
	}
	if err := ctx.Err(); err != nil {
		errs = append(errs, fmt.Errorf("vip: pass cut short: %w", err))
	}
	if len(forget) > 0 {
		if err := b.ledger.ForgetAddresses(forget...); err != nil {
			// Harmless: a later pass finds them gone and forgets them again.
			errs = append(errs, fmt.Errorf("vip: forget %d addresses: %w", len(forget), err))
		}
	}
	sortAddresses(bound)
	return bound, errors.Join(errs...)
}
