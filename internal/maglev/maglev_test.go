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
// slots strays from 1/N. Rendezvous hashing balances only as well as the
// hash's luck allows: the spread grows like sqrt(N/TableSize). The bounds
// are what these keys measure, with a little headroom, so a worse hash
// fails here.
func TestTableEqualWeightsBalance(t *testing.T) {
	for _, tc := range []struct {
		n      int
		lo, hi float64 // share bounds, in units of 1/N
	}{
		{1, 1, 1}, {2, 0.97, 1.03}, {3, 0.95, 1.05}, {10, 0.85, 1.1}, {33, 0.8, 1.25}, {100, 0.55, 1.5},
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
				// A backend's slot count is binomial around its share:
				// allow four standard deviations.
				p := float64(w) / total
				want := TableSize * p
				if sd := math.Sqrt(TableSize * p * (1 - p)); math.Abs(float64(c[i])-want) > 4*sd+1 {
					t.Errorf("weight %d: %d slots, want %.1f ± %.1f (all: %v)", w, c[i], want, 4*sd+1, c)
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

// TestTableGolden pins the table for a fixed backend set (rendezvous
// construction, since issue 11). If it fails, the hashes or TableSize
// changed: nodes running the old and the new code would send the same
// flow to different backends. Change the expectation only on purpose, and
// say so in the release notes.
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
		0:             "10.0.0.2:80",
		1:             "10.0.0.2:80",
		2:             "10.0.0.2:80",
		3:             "10.0.0.2:80",
		1000:          "[fd00::3]:8080",
		2048:          "[fd00::3]:8080",
		TableSize - 1: "10.0.0.1:80",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("pinned slots changed (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]int{954, 1033, 2112}, counts(t, table, len(bs))); diff != "" {
		t.Errorf("slot counts changed (-want +got):\n%s", diff)
	}
}

// moved counts the slots whose backend differs between two tables (by
// key), and among them those that before belonged to a backend in from.
func moved(before, after []string, from map[string]bool) (all, fromSet int) {
	for slot := range before {
		if before[slot] != after[slot] {
			all++
			if from[before[slot]] || from[after[slot]] {
				fromSet++
			}
		}
	}
	return all, fromSet
}

// disruption removes each of up to 50 backends of n (spread over the key
// order) in turn and returns the mean and largest fraction of slots that
// changed backend, in units of 1/N, and how many slots moved that were not
// the removed backend's.
func disruption(n int) (mean, worst float64, collateral int) {
	bs := equal(n)
	full := keys(Table(bs), bs)
	var sum float64
	trials := 0
	for r := 0; r < n; r += max(1, n/50) {
		rest := slices.Delete(slices.Clone(bs), r, r+1)
		all, own := moved(full, keys(Table(rest), rest), map[string]bool{bs[r].Key: true})
		collateral += all - own
		d := float64(all) * float64(n) / TableSize
		sum += d
		worst = max(worst, d)
		trials++
	}
	return sum / float64(trials), worst, collateral
}

// TestTableMinimalDisruption is the target: when one of N backends
// leaves, at most 1.1/N of the flows change backend. With rendezvous
// hashing only the leaver's slots move, so the mean over every choice of
// leaver is 1/N for any N, and the worst case is the largest share (see
// TestTableEqualWeightsBalance). Both tables here come from the same
// backends listed in different orders, as two nodes might hold them.
func TestTableMinimalDisruption(t *testing.T) {
	for _, n := range []int{10, 50, 100, 1000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			bs := equal(n)
			shuffled := slices.Clone(bs)
			rand.New(rand.NewPCG(uint64(n), 7)).Shuffle(n, func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
			if diff := cmp.Diff(keys(Table(bs), bs), keys(Table(shuffled), shuffled)); diff != "" {
				t.Fatalf("two builds from the same backends differ (-sorted +shuffled):\n%s", diff)
			}
			mean, worst, collateral := disruption(n)
			if collateral != 0 {
				t.Errorf("removing 1 of %d moved %d slots that the leaver did not hold, want 0", n, collateral)
			}
			if mean > 1.1 {
				t.Errorf("removing 1 of %d moves %.3f/N of the slots on average, want <= 1.1/N", n, mean)
			}
			t.Logf("removing 1 of %d moves %.3f/N of the slots on average, at most %.3f/N", n, mean, worst)
		})
	}
}

// TestTableAddAndReweighMoveOnlyTheirSlots: a new backend takes slots only
// from the others (none move between them), and a weight change moves
// slots only to or from the reweighted backend.
func TestTableAddAndReweighMoveOnlyTheirSlots(t *testing.T) {
	bs := equal(21)
	base := keys(Table(bs[:20]), bs[:20])
	added := keys(Table(bs), bs)
	all, involved := moved(base, added, map[string]bool{bs[20].Key: true})
	if all != involved {
		t.Errorf("adding a 21st backend moved %d slots, %d of them not to it", all, all-involved)
	}
	heavier := slices.Clone(bs)
	heavier[7].Weight = 3
	all, involved = moved(added, keys(Table(heavier), heavier), map[string]bool{bs[7].Key: true})
	if all != involved || all == 0 {
		t.Errorf("reweighting one backend moved %d slots, %d of them not to it", all, all-involved)
	}
}

func BenchmarkTable100(b *testing.B) {
	bs := equal(100)
	for b.Loop() {
		Table(bs)
	}
}

// BenchmarkDisruption reports the mean and worst moved fraction (in units
// of 1/N) when 1 of N backends leaves; the target is 1.1.
func BenchmarkDisruption(b *testing.B) {
	for _, n := range []int{10, 100} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			var mean, worst float64
			for b.Loop() {
				mean, worst, _ = disruption(n)
			}
			b.ReportMetric(mean, "mean-moved-x-N")
			b.ReportMetric(worst, "worst-moved-x-N")
		})
	}
}
