package maglev

import (
	"cmp"
	"fmt"
	"os"
	"slices"
	"testing"
)

// This file holds the experiment behind the choice of fill (issue 11). It
// runs only with MAGLEV_EXPERIMENT=1 and prints, for each candidate, the
// balance and the slots moved by removing or adding one backend, all in
// units of 1/N. The candidates:
//
//   - table: Table, rendezvous over Maglev preference lists;
//   - hash: the fill before it, rendezvous over a hash per slot and backend;
//   - capped C: rendezvous with bounded loads over the same (whole) lists: each
//     backend holds at most floor(C·TableSize/N) slots, the (slot, backend)
//     pairs taken greedily in order of preference, so the cap cascades.

// builder fills a table of TableSize slots.
type builder func([]Backend) []int

// hashFill is the fill before issue 11: each slot to the backend with the
// highest hash(slot, backend), weight w as the best of w hashes.
func hashFill(bs []Backend) []int {
	t := slices.Repeat([]int{-1}, TableSize)
	best := make([]uint64, TableSize)
	for i, b := range bs {
		for _, seed := range replicaSeeds(b.Key, b.Weight) {
			for s := range t {
				if x := mix(seed ^ mix(uint64(s)+slotSalt)); t[s] < 0 || x > best[s] {
					best[s], t[s] = x, i
				}
			}
		}
	}
	return t
}

// capped is rendezvous with bounded loads over Table's preference lists.
func capped(c float64) builder {
	return func(bs []Backend) []int {
		n := len(bs)
		limit := max(int(c*TableSize/float64(n)), (TableSize+n-1)/n)
		type pair struct {
			slot, backend int
			score         uint64
		}
		var pairs []pair
		for _, r := range replicas(bs, TableSize) {
			for pos := range TableSize {
				// Earlier in the list first; the tie hash settles a draw.
				score := uint64(TableSize-pos)<<32 | mix(r.tie^uint64(r.next))>>32
				pairs = append(pairs, pair{int(r.next), r.backend, score})
				if r.next += r.skip; r.next >= TableSize {
					r.next -= TableSize
				}
			}
		}
		slices.SortFunc(pairs, func(a, b pair) int { return cmp.Compare(b.score, a.score) })
		t := slices.Repeat([]int{-1}, TableSize)
		load := make([]int, n)
		for _, p := range pairs {
			if t[p.slot] < 0 && load[p.backend] < limit {
				t[p.slot] = p.backend
				load[p.backend]++
			}
		}
		return t
	}
}

func TestExperiment(t *testing.T) {
	if os.Getenv("MAGLEV_EXPERIMENT") == "" {
		t.Skip("set MAGLEV_EXPERIMENT=1 to run the fill experiment (minutes)")
	}
	candidates := []struct {
		name  string
		build builder
	}{
		{"table", Table}, {"hash", hashFill},
		{"capped 1.1", capped(1.1)}, {"capped 1.15", capped(1.15)}, {"capped 1.0", capped(1.0)},
	}
	fmt.Printf("%-12s %5s  %-13s  %-13s  %-13s\n", "fill", "N", "share min-max", "remove mean/max", "add mean/max")
	for _, c := range candidates {
		for _, n := range []int{10, 50, 100, 1000} {
			if n == 1000 && c.name != "table" && c.name != "hash" {
				continue // a sort of 4M pairs per build: too slow to repeat
			}
			f := measure(c.build, n)
			fmt.Printf("%-12s %5d  %.3f-%.3f    %.3f/%.3f      %.3f/%.3f\n", c.name, n, f.minShare, f.maxShare, f.removeMean, f.removeMax, f.addMean, f.addMax)
		}
	}
}

// TestExperimentKeySets prints the spread of the largest share over many
// sets of keys, as one set can be lucky or not: the median, the 90th
// percentile and the largest, in units of 1/N.
func TestExperimentKeySets(t *testing.T) {
	if os.Getenv("MAGLEV_EXPERIMENT") == "" {
		t.Skip("set MAGLEV_EXPERIMENT=1 to run the fill experiment")
	}
	fmt.Printf("%-6s %4s %5s  %-19s\n", "fill", "N", "sets", "largest share p50/p90/max")
	for _, n := range []int{2, 3, 5, 10, 50, 100} {
		sets := map[bool]int{true: 2000, false: 40}[n < 10]
		if n == 10 {
			sets = 200
		}
		for _, c := range []struct {
			name  string
			build builder
		}{{"table", Table}, {"hash", hashFill}} {
			var largest []float64
			for set := range sets {
				bs := make([]Backend, n)
				for i := range bs {
					bs[i] = Backend{Key: fmt.Sprintf("10.%d.%d.%d:443", set/250, set%250, i+1), Weight: 1}
				}
				count := make([]int, n)
				for _, i := range c.build(bs) {
					count[i]++
				}
				largest = append(largest, float64(slices.Max(count))*float64(n)/TableSize)
			}
			slices.Sort(largest)
			fmt.Printf("%-6s %4d %5d  %.3f/%.3f/%.3f\n", c.name, n, sets, largest[sets/2], largest[sets*9/10], largest[sets-1])
		}
	}
}
