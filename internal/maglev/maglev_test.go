package maglev

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// equal returns n backends of weight 1 with distinct keys.
func equal(n int) []Backend {
	bs := make([]Backend, n)
	for i := range bs {
		bs[i] = Backend{Key: fmt.Sprintf("10.0.%d.%d:8080", i/250, i%250+1), Weight: 1}
	}
	return bs
}

// counts returns how many slots each backend holds.
func counts(t *testing.T, table []int, n int) []int {
	t.Helper()
	if len(table) != TableSize {
		t.Fatalf("table has %d slots, want %d", len(table), TableSize)
	}
	c := make([]int, n)
	for slot, i := range table {
		if i < 0 || i >= n {
			t.Fatalf("slot %d holds backend %d, want 0..%d", slot, i, n-1)
		}
		c[i]++
	}
	return c
}

// keys maps a table to the keys of its backends, which is what two nodes
// must agree on.
func keys(table []int, bs []Backend) []string {
	out := make([]string, len(table))
	for slot, i := range table {
		out[slot] = bs[i].Key
	}
	return out
}

func TestTableSizeIsPrime(t *testing.T) {
	for d := 2; d*d <= TableSize; d++ {
		if TableSize%d == 0 {
			t.Fatalf("TableSize %d is divisible by %d", TableSize, d)
		}
	}
}

// TestTableEqualWeightsBalance bounds how far a backend's share of the
// slots strays from 1/N. Rendezvous over Maglev's lists balances only as
// well as the lists' overlaps allow, worse as N grows; the bounds are what
// these keys measure, with a little headroom, so a worse fill fails here.
// Issue 11's 1.1/N is on the flows a removal moves (TestTableDisruption);
// a balance that tight holds here up to N = 10 only.
func TestTableEqualWeightsBalance(t *testing.T) {
	for _, tc := range []struct {
		n      int
		lo, hi float64 // share bounds, in units of 1/N
	}{
		{1, 1, 1}, {2, 0.99, 1.01}, {3, 0.97, 1.03}, {10, 0.95, 1.05}, {33, 0.75, 1.15}, {100, 0.7, 1.4},
	} {
		t.Run(fmt.Sprint(tc.n), func(t *testing.T) {
			c := counts(t, Table(equal(tc.n)), tc.n)
			lo := float64(slices.Min(c)) * float64(tc.n) / TableSize
			hi := float64(slices.Max(c)) * float64(tc.n) / TableSize
			if lo < tc.lo || hi > tc.hi {
				t.Errorf("shares range %.3f/N..%.3f/N, want within %.2f/N..%.2f/N: %v", lo, hi, tc.lo, tc.hi, c)
			}
			t.Logf("%d backends: shares %.3f/N..%.3f/N", tc.n, lo, hi)
		})
	}
}

func TestTableWeights(t *testing.T) {
	for _, weights := range [][]uint32{{1, 2}, {1, 2, 3, 4}, {100, 1}, {5, 5, 10}, {1, 100, 50}} {
		t.Run(fmt.Sprint(weights), func(t *testing.T) {
			bs := equal(len(weights))
			var total float64
			for i, w := range weights {
				bs[i].Weight = w
				total += float64(w)
			}
			c := counts(t, Table(bs), len(bs))
			for i, w := range weights {
				// Allow five binomial standard deviations: the lists
				// usually do better than independent draws, but with
				// few of them one pair can overlap badly (5 5 10 here:
				// 902 slots for 1025, 4.4 deviations).
				p := float64(w) / total
				want := TableSize * p
				if sd := math.Sqrt(TableSize * p * (1 - p)); math.Abs(float64(c[i])-want) > 5*sd+1 {
					t.Errorf("weight %d: %d slots, want %.1f ± %.1f (all: %v)", w, c[i], want, 5*sd+1, c)
				}
			}
		})
	}
}

func TestTableExcludesZeroWeight(t *testing.T) {
	bs := equal(3)
	bs[1].Weight = 0
	c := counts(t, Table(bs), len(bs))
	if c[1] != 0 {
		t.Errorf("weight-0 backend holds %d slots, want 0", c[1])
	}
	// The weight-0 backend is as good as absent: the table is the one of
	// the other two.
	rest := []Backend{bs[0], bs[2]}
	if diff := cmp.Diff(keys(Table(rest), rest), keys(Table(bs), bs)); diff != "" {
		t.Errorf("a weight-0 backend changes the table (-without +with):\n%s", diff)
	}
	if c[0]+c[2] != TableSize {
		t.Errorf("the other two hold %d and %d slots, want all %d", c[0], c[2], TableSize)
	}
}

func TestTableEmpty(t *testing.T) {
	for name, bs := range map[string][]Backend{
		"nil":         nil,
		"zero weight": {{Key: "10.0.0.1:80"}, {Key: "10.0.0.2:80"}},
	} {
		if got := Table(bs); got != nil {
			t.Errorf("%s: got a table of %d slots, want nil", name, len(got))
		}
	}
}

// TestTableOrderIndependent checks that nodes listing the same backends in
// different orders build the same table (by key) and that the indices
// refer to the caller's slice.
func TestTableOrderIndependent(t *testing.T) {
	bs := equal(20)
	bs[3].Weight, bs[11].Weight = 3, 2
	want := keys(Table(bs), bs)
	rng := rand.New(rand.NewPCG(1, 2))
	for range 5 {
		shuffled := slices.Clone(bs)
		rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		if diff := cmp.Diff(want, keys(Table(shuffled), shuffled)); diff != "" {
			t.Fatalf("shuffled input gives another table (-want +got):\n%s", diff)
		}
	}
}

// TestTableGolden pins the table for a fixed backend set (Maglev lists
// filled by rendezvous, since issue 11). If it fails, the hashes or
// TableSize changed: nodes running the old and the new code would send the
// same flow to different backends. Change the expectation only on purpose,
// and say so in the release notes.
func TestTableGolden(t *testing.T) {
	bs := []Backend{
		{Key: "10.0.0.1:80", Weight: 1},
		{Key: "10.0.0.2:80", Weight: 1},
		{Key: "[fd00::3]:8080", Weight: 2},
	}
	table := Table(bs)
	got := map[int]string{}
	for _, slot := range []int{0, 1, 2, 3, 1000, 2048, TableSize - 1} {
		got[slot] = bs[table[slot]].Key
	}
	want := map[int]string{
		0:             "[fd00::3]:8080",
		1:             "10.0.0.1:80",
		2:             "10.0.0.2:80",
		3:             "[fd00::3]:8080",
		1000:          "[fd00::3]:8080",
		2048:          "[fd00::3]:8080",
		TableSize - 1: "10.0.0.1:80",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("pinned slots changed (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]int{1033, 1014, 2052}, counts(t, table, len(bs))); diff != "" {
		t.Errorf("slot counts changed (-want +got):\n%s", diff)
	}
}

// figures are the balance of a table of n backends and the slots moved by
// removing or adding one, in units of 1/N. Collateral counts moved slots
// that were not the leaver's or did not go to the newcomer.
type figures struct {
	minShare, maxShare    float64
	removeMean, removeMax float64
	addMean, addMax       float64
	collateral            int
}

// measure fills n backends, removes each of them in turn (at most 100,
// spread over the key order), and adds each of 20 new backends to n-1 of
// them. Moves are in units of 1/N with N = n, the larger of the two
// tables: "1 of N goes" and "an Nth comes".
func measure(build builder, n int) figures {
	bs := equal(n + 20)
	all := bs[:n]
	full := keys(build(all), all)
	count := map[string]int{}
	for _, k := range full {
		count[k]++
	}
	unit := float64(n) / TableSize
	f := figures{minShare: math.Inf(1)}
	for _, b := range all {
		f.minShare = min(f.minShare, float64(count[b.Key])*unit)
		f.maxShare = max(f.maxShare, float64(count[b.Key])*unit)
	}
	removals := 0
	for r := 0; r < n; r += max(1, n/100) {
		rest := slices.Delete(slices.Clone(all), r, r+1)
		moves, own := moved(full, keys(build(rest), rest), all[r].Key)
		f.collateral += moves - own
		f.removeMean += float64(moves) * unit
		f.removeMax = max(f.removeMax, float64(moves)*unit)
		removals++
	}
	f.removeMean /= float64(removals)
	base := all[:n-1]
	before := keys(build(base), base)
	for _, b := range bs[n:] {
		more := append(slices.Clone(base), b)
		moves, own := moved(before, keys(build(more), more), b.Key)
		f.collateral += moves - own
		f.addMean += float64(moves) * unit
		f.addMax = max(f.addMax, float64(moves)*unit)
	}
	f.addMean /= float64(len(bs) - n)
	return f
}

// moved counts the slots whose backend differs between two tables (by
// key), and among them those that left or went to key.
func moved(before, after []string, key string) (all, own int) {
	for slot := range before {
		if before[slot] != after[slot] {
			all++
			if before[slot] == key || after[slot] == key {
				own++
			}
		}
	}
	return all, own
}

// TestTableDisruption holds issue 11's target: when 1 of N backends goes,
// at most 1.1/N of the flows change backend, for N = 10, 50, 100 and
// 1,000, counted as the Maglev paper counts it, over which backend goes.
// Only the leaver's slots move (no collateral), so the mean is 1/N at
// every N. The worst single removal is the largest share, which is the
// balance of the table and depends on the luck of the hashes at 4099
// slots; its bounds are what these keys measure, with a little headroom,
// so that a worse fill fails here. Both tables of each N come from the
// same backends listed in different orders, as two nodes might hold them.
func TestTableDisruption(t *testing.T) {
	for _, tc := range []struct {
		n     int
		worst float64 // bound on the largest share and on any removal or addition, in units of 1/N
	}{
		{10, 1.1}, {50, 1.2}, {100, 1.4}, {1000, 2.5},
	} {
		t.Run(fmt.Sprint(tc.n), func(t *testing.T) {
			bs := equal(tc.n)
			shuffled := slices.Clone(bs)
			rand.New(rand.NewPCG(uint64(tc.n), 7)).Shuffle(tc.n, func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
			if diff := cmp.Diff(keys(Table(bs), bs), keys(Table(shuffled), shuffled)); diff != "" {
				t.Fatalf("two builds from the same backends differ (-sorted +shuffled):\n%s", diff)
			}
			f := measure(Table, tc.n)
			if f.collateral != 0 {
				t.Errorf("%d slots moved between backends that stayed, want 0", f.collateral)
			}
			if f.maxShare > tc.worst || f.removeMax > tc.worst || f.addMax > tc.worst {
				t.Errorf("largest share %.3f/N, removal %.3f/N, addition %.3f/N; want all <= %.2f/N", f.maxShare, f.removeMax, f.addMax, tc.worst)
			}
			if f.removeMean > 1.1 {
				t.Errorf("a removal moves %.3f/N on average, want <= 1.1/N", f.removeMean)
			}
			t.Logf("shares %.3f..%.3f/N; removal mean %.3f/N, worst %.3f/N; addition mean %.3f/N, worst %.3f/N",
				f.minShare, f.maxShare, f.removeMean, f.removeMax, f.addMean, f.addMax)
		})
	}
}

// TestTableReweighMovesOnlyItsSlots: a weight change moves slots only to
// or from the reweighted backend.
func TestTableReweighMovesOnlyItsSlots(t *testing.T) {
	bs := equal(21)
	before := keys(Table(bs), bs)
	heavier := slices.Clone(bs)
	heavier[7].Weight = 3
	all, own := moved(before, keys(Table(heavier), heavier), bs[7].Key)
	if all != own || all == 0 {
		t.Errorf("reweighting one backend moved %d slots, %d of them not to it", all, all-own)
	}
}

func BenchmarkTable(b *testing.B) {
	for _, tc := range []struct {
		n int
		w uint32
	}{{10, 1}, {100, 1}, {1000, 1}, {100, 100}} {
		b.Run(fmt.Sprintf("N=%d,w=%d", tc.n, tc.w), func(b *testing.B) {
			bs := equal(tc.n)
			for i := range bs {
				bs[i].Weight = tc.w
			}
			for b.Loop() {
				Table(bs)
			}
		})
	}
}
