// Package maglev builds the lookup tables of vipd's consistent hashing: a
// table of TableSize slots, each naming a backend, indexed by a hash of the
// flow, in the shape the Maglev paper (Eisenbud et al., NSDI 2016) made
// common. Each backend has Maglev's preference list over the slots (a
// permutation from an offset and a skip), but the table is not filled by
// Maglev's round-robin: each slot goes to the backend that lists it
// earliest or, if none lists it among its first listDepth, to the one
// with the highest hash for it: a rendezvous (highest random weight)
// choice.
//
// Why: when each slot's owner is the top of a ranking of backends fixed
// for that slot, removing a backend changes only the slots it held (each
// falls to the next in its ranking) and adding one takes only the slots it
// tops, so the share of flows that change backend when one of N goes is
// that backend's share of the table, 1/N on average, for every N.
// Maglev's round-robin also reshuffles slots between the backends that
// stay, more so as N grows towards TableSize/100: with 4099 slots it moved
// 2.2/N of the flows at N = 50 and 4.2/N at N = 100. The data plane writes
// only the slots that moved, so fewer moved slots are also a smaller
// kernel update.
//
// The price is balance, and so the worst case: a backend holds its share
// of the slots only up to the luck of the hashes, and removing the largest
// moves its share. Maglev's round-robin balanced to within one slot.
// Capping each backend's load (rendezvous with bounded loads) restores the
// balance but moves flows between the backends that stay: at 100 backends
// a cap of 1.1/N moved up to 1.59/N (see experiment_test.go).
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
// project's 2-core test VM). The cost is balance at large N: with 100
// backends the largest holds about 1.3/N of the table, and removing it
// moves that much. Doubling it to 8191 helps less than it costs: over 40
// sets of 100 backends the largest share fell from 1.29/N to 1.18/N in
// the median (1.39/N to 1.25/N at worst), still above issue 11's 1.1/N,
// for twice the kernel memory, and a change of size moves every flow. It
// is prime, so that every skip walks every slot once.
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
// Each backend has, per unit of weight, a replica with a preference list
// over the slots, built as Maglev builds it: a permutation offset,
// offset+skip, offset+2·skip, … (mod TableSize) drawn from a hash of the
// key and the replica's number. A slot goes to the replica that lists it
// earliest, counting only the first listDepth positions; equal positions,
// and slots that no list reaches that early, are settled by a hash of the
// slot and the replica, then by the smaller key.
//
// Why this fill: the owner of a slot is the top of a ranking of the
// backends that is fixed for that slot (rendezvous hashing), so removing
// a backend moves only its own slots and adding one moves only the slots
// it takes. Why Maglev's lists rather than a hash per slot and backend:
// a backend's positions over the slots form a lattice, not independent
// draws, and its share strays less from w/Σw (over 40 sets of 100
// backends the largest held 1.29/N of the table in the median, where
// independent hashes gave 1.39/N). Maglev's own fill, where a backend
// whose preferred slot is taken takes its next free one, balances to a
// slot but moves flows between the backends that stay.
//
// The result depends on the set of backends, not on their order in the
// slice. A replica's number is its place in 0..w-1, so a change of one
// backend's weight moves slots only to or from it.
//
// Cost: the fill goes position by position over all replicas and stops
// when every slot is taken, and the hash settles what is left after
// listDepth positions: 0.1 ms for 100 backends of weight 1, 0.3 ms for
// 1000, 1.2 ms for 100 of weight 100.
func Table(backends []Backend) []int {
	return TableOfSize(backends, TableSize)
}

// LargeTableSize is the size of the XDP data plane's tables: a BPF array
// costs 12 bytes a slot where an nft map element costs about 120, so the
// XDP data plane can afford the balance of a larger table.
const LargeTableSize = 65537

// TableOfSize is Table for a table of size slots, which must be a prime
// (each skip then walks every slot once). Only a list's first size/8
// positions count (listDepth for TableSize). TableOfSize(b, TableSize)
// is Table(b); other sizes give unrelated tables.
func TableOfSize(backends []Backend, size int) []int {
	if !isPrime(size) {
		panic("maglev: table size must be a prime")
	}
	reps := replicas(backends, uint32(size))
	if len(reps) == 0 {
		return nil
	}
	owner := make([]int32, size)
	round := make([]int32, size) // position at which the slot was taken
	tie := make([]uint64, size)
	for i := range owner {
		owner[i] = -1
	}
	free := size
	depth := listDepth(size)
	for pos := int32(0); pos < depth && free > 0; pos++ {
		for k := range reps {
			r := &reps[k]
			slot := r.next
			if r.next += r.skip; int(r.next) >= size {
				r.next -= uint32(size)
			}
			switch t := mix(r.tie ^ uint64(slot)); {
			case owner[slot] < 0:
				owner[slot], round[slot], tie[slot] = int32(k), pos, t
				free--
			case round[slot] == pos && t > tie[slot]:
				// Listed at the same position by both: the hash decides,
				// and on equal hashes the earlier replica (smaller key)
				// keeps the slot.
				owner[slot], tie[slot] = int32(k), t
			}
		}
	}
	for slot := range owner {
		if owner[slot] >= 0 {
			continue
		}
		// Every list has it at listDepth or later: by hash alone.
		var best uint64
		for k := range reps {
			if t := mix(reps[k].tie ^ uint64(slot)); owner[slot] < 0 || t > best {
				owner[slot], best = int32(k), t
			}
		}
	}
	table := make([]int, size)
	for slot, k := range owner {
		table[slot] = reps[k].backend
	}
	return table
}

// listDepth is how many positions of each list count. Beyond it two lists
// can order a slot by how they overlap rather than by chance: two lists
// with the same skip are the same cycle from two offsets, and the later
// one would get only the slots the other lists last (at 2 backends, one
// set of keys in 4098, and a split up to 0.05/0.95). With few backends
// many slots are decided there, so a hash decides them instead; with 50
// or more, all are taken before. 512 (TableSize/8) was the best of
// 128-4099 at N = 2-100: over 2000 sets of 2 or 3 backends the largest
// share stayed under 1.08/N (1.50/N with whole lists, 1.11/N with hashes
// alone), and N = 50 and 100 did as with whole lists. Other sizes keep
// the ratio.
func listDepth(size int) int32 { return int32(size / 8) }

// replica is one unit of a backend's weight, walking its preference list.
type replica struct {
	backend    int    // index in the caller's slice
	next, skip uint32 // next slot of its list, and the step between slots
	tie        uint64 // seed of the tie-break hash
}

// replicas returns the replicas of the backends with a weight, in key
// order (equal keys by weight), so that the fill, and its tie-break, do
// not depend on the caller's order.
func replicas(backends []Backend, size uint32) []replica {
	order := make([]int, 0, len(backends))
	for i, b := range backends {
		if b.Weight > 0 {
			order = append(order, i)
		}
	}
	slices.SortStableFunc(order, func(a, b int) int {
		return cmp.Or(cmp.Compare(backends[a].Key, backends[b].Key), cmp.Compare(backends[a].Weight, backends[b].Weight))
	})
	var reps []replica
	for _, i := range order {
		for _, seed := range replicaSeeds(backends[i].Key, backends[i].Weight) {
			reps = append(reps, replica{
				backend: i,
				next:    uint32(mix(seed^offsetSalt) % uint64(size)),
				// 1..size-1: as size is prime, every skip visits
				// every slot once.
				skip: uint32(1 + mix(seed^skipSalt)%uint64(size-1)),
				tie:  mix(seed ^ tieSalt),
			})
		}
	}
	return reps
}

// Salts separate the hashes drawn from one replica seed, and slot numbers
// from seeds.
const (
	slotSalt   = 0x9e3779b97f4a7c15
	offsetSalt = 0x2545f4914f6cdd1d
	skipSalt   = 0x5851f42d4c957f2d
	tieSalt    = 0x14057b7ef767814f
)

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

func isPrime(n int) bool {
	if n < 2 {
		return false
	}
	for d := 2; d*d <= n; d++ {
		if n%d == 0 {
			return false
		}
	}
	return true
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
