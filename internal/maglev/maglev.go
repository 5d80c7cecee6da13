// Package maglev builds the lookup tables of vipd's consistent hashing: a
// table of TableSize slots, each naming a backend, indexed by a hash of the
// flow, in the shape the Maglev paper (Eisenbud et al., NSDI 2016) made
// common. The table is not filled with Maglev's permutation round-robin,
// though, but per slot by rendezvous (highest random weight) hashing: slot
// s goes to the backend whose score hash(s, backend) is highest.
//
// Why: with rendezvous hashing, removing a backend changes only the slots
// it held (each falls to its next-highest scorer) and adding one takes
// only the slots it wins, so the share of flows that change backend when
// one of N goes is that backend's share of the table, 1/N on average, for
// every N. Maglev's round-robin also reshuffles slots between the backends
// that stay, more so as N grows towards TableSize/100: with 4099 slots it
// moved 2.2/N of the flows at N = 50 and 4.2/N at N = 100. The data plane
// writes only the slots that moved, so fewer moved slots are also a
// smaller kernel update.
//
// The price is balance: each backend holds its expected share of slots
// only up to the luck of the hash, a spread that grows with N/TableSize
// (see TableSize). Maglev's round-robin balanced to within one slot.
//
// The table depends only on the backends' keys and weights, never on their
// order or on anything local to one host, so every node that is given the
// same backends builds the same table and sends a flow (hashed to a slot
// the same way) to the same backend. Changing TableSize or the hashes
// changes every table: nodes running different versions would then
// disagree, which is why a golden test pins both.
package maglev

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"slices"
)

// TableSize is the number of slots in every table. The data plane keeps
// one nft map element per slot and load balancer, so it is kept small: a
// map of 4099 elements takes about 0.5 MB of kernel memory and 0.1 s for
// nft to load, where one of 65,537 took 7.6 MB and 0.7 s (measured on this
// project's 2-core test VM). The cost is balance at large N: a backend's
// share of the slots varies by about sqrt(N/TableSize), so with 100
// backends the largest holds about 1.4/N of the table, and removing it
// moves that much. It is prime so that slot numbers share no factor with
// the flow hash's regularities.
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
// slice. A backend of weight w scores each slot as the best of w
// independent hashes (its replicas), so it wins a slot against the others
// with probability w/Σw, exactly, in integer arithmetic that every
// architecture computes alike. Its replicas are numbered 0..w-1, so a
// change of one backend's weight moves slots only to or from it. Equal
// scores, which need a 64-bit hash collision, go to the smaller key.
//
// Cost: TableSize × Σw hashes, about 5 ms for 100 backends of weight 1.
func Table(backends []Backend) []int {
	order := make([]int, 0, len(backends))
	for i, b := range backends {
		if b.Weight > 0 {
			order = append(order, i)
		}
	}
	if len(order) == 0 {
		return nil
	}
	// Key order makes the tie-break, and so the table, independent of
	// the caller's order; equal keys are told apart by weight.
	slices.SortStableFunc(order, func(a, b int) int {
		return cmp.Or(cmp.Compare(backends[a].Key, backends[b].Key), cmp.Compare(backends[a].Weight, backends[b].Weight))
	})
	replicas := make([][]uint64, len(order))
	for j, i := range order {
		replicas[j] = replicaSeeds(backends[i].Key, backends[i].Weight)
	}
	table := make([]int, TableSize)
	for slot := range table {
		s := mix(uint64(slot) + slotSalt)
		best, winner := uint64(0), -1
		for j, seeds := range replicas {
			for _, seed := range seeds {
				// Strictly greater: on a tie the earlier (smaller) key stays.
				if score := mix(seed ^ s); winner < 0 || score > best {
					best, winner = score, j
				}
			}
		}
		table[slot] = order[winner]
	}
	return table
}

// slotSalt separates slot numbers from replica seeds before mixing.
const slotSalt = 0x9e3779b97f4a7c15

// replicaSeeds derives a backend's w replica seeds from a SHA-256 of its
// key: stable across hosts, architectures and Go versions, and well spread
// even for keys that differ in one character.
func replicaSeeds(key string, w uint32) []uint64 {
	sum := sha256.Sum256([]byte(key))
	base := binary.BigEndian.Uint64(sum[0:8])
	seeds := make([]uint64, w)
	for r := range seeds {
		seeds[r] = mix(base + uint64(r)*slotSalt)
	}
	return seeds
}

// mix is the SplitMix64 finalizer: a bijection on 64 bits whose output
// bits each depend on every input bit.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
