// Package maglev builds Maglev lookup tables (Eisenbud et al., "Maglev: A
// Fast and Reliable Software Network Load Balancer", NSDI 2016): a table
// of TableSize slots, each naming a backend, such that every backend holds
// a share of the slots proportional to its weight and a change to the
// backend set moves few slots.
//
// The table depends only on the backends' keys and weights, never on their
// order or on anything local to one host, so every node that is given the
// same backends builds the same table and sends a flow (hashed to a slot
// the same way) to the same backend. Changing TableSize or the key hash
// changes every table: nodes running different versions would then
// disagree, which is why a golden test pins both.
package maglev

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"slices"
)

// TableSize is the number of slots in every table. It must be prime, so
// that every skip below it walks all slots.
//
// Maglev's disruption bound needs TableSize to be much larger than the
// number of backends: with 100 backends, 4099 slots still give each one 40
// or 41 (1 slot of imbalance is 2.5 %) and removing one of them moves
// about 1.1/N of the slots. The data plane keeps one nft map element per
// slot and load balancer, so a much larger table would make every rewrite
// of the ruleset slower for little gain.
const TableSize = 4099

// Backend is one entry of a table.
type Backend struct {
	// Key identifies the backend identically on every node, e.g.
	// "10.0.0.1:80". Keys should be unique.
	Key string
	// Weight is the backend's share relative to the others; 0 excludes it.
	Weight uint32
}

// Table returns the lookup table for backends: slot i is served by
// backends[table[i]]. It is nil if no backend has a weight.
//
// The result depends on the set of backends, not on their order in the
// slice. Each backend claims slots in the order of its own permutation of
// the table (an offset and a skip derived from a hash of its key), taking
// turns with the others in key order; a backend with weight w takes a turn
// in w out of every maxWeight rounds, so equal weights end up with slot
// counts that differ by at most one.
func Table(backends []Backend) []int {
	order := make([]int, 0, len(backends))
	var maxWeight uint64
	for i, b := range backends {
		if b.Weight > 0 {
			order = append(order, i)
			maxWeight = max(maxWeight, uint64(b.Weight))
		}
	}
	if len(order) == 0 {
		return nil
	}
	slices.SortStableFunc(order, func(a, b int) int {
		return cmp.Or(cmp.Compare(backends[a].Key, backends[b].Key), cmp.Compare(backends[a].Weight, backends[b].Weight))
	})

	perms := make([]permutation, len(order))
	for j, i := range order {
		perms[j] = newPermutation(backends[i].Key)
	}
	table := make([]int, TableSize)
	for i := range table {
		table[i] = -1
	}
	credit := make([]uint64, len(order))
	for filled := 0; filled < TableSize; {
		// The backends with the largest weight take a slot every round,
		// so every round fills at least one slot.
		for j, i := range order {
			credit[j] += uint64(backends[i].Weight)
			if credit[j] < maxWeight {
				continue
			}
			credit[j] -= maxWeight
			slot := perms[j].next()
			for table[slot] >= 0 {
				slot = perms[j].next()
			}
			table[slot] = i
			if filled++; filled == TableSize {
				break
			}
		}
	}
	return table
}

// permutation walks the slots in a backend's order of preference.
type permutation struct {
	slot, skip uint64
}

// newPermutation derives a backend's permutation from its key with
// SHA-256: stable across hosts, architectures and Go versions, and well
// spread even for keys that differ in one character.
func newPermutation(key string) permutation {
	sum := sha256.Sum256([]byte(key))
	offset := binary.BigEndian.Uint64(sum[0:8]) % TableSize
	skip := binary.BigEndian.Uint64(sum[8:16])%(TableSize-1) + 1
	// next adds skip before returning, so start one skip back.
	return permutation{slot: (offset + TableSize - skip) % TableSize, skip: skip}
}

// next returns the next slot of the permutation. TableSize is prime and
// 0 < skip < TableSize, so the first TableSize calls visit every slot once.
func (p *permutation) next() int {
	p.slot = (p.slot + p.skip) % TableSize
	return int(p.slot)
}
