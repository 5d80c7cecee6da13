package store

import (
	"slices"
	"testing"
)

func TestDrainsSurviveReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"web", "dns", "api"} {
		if err := s.SetDrained(name, true); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SetDrained("dns", false); err != nil {
		t.Fatal(err)
	}
	if err := s.SetDrained("never-drained", false); err != nil {
		t.Fatalf("undrain of a service never drained: %v", err)
	}
	if err := s.SetDrained("", true); err == nil {
		t.Error("SetDrained with an empty name: no error")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.Drained()
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"api", "web"}; !slices.Equal(got, want) {
		t.Errorf("Drained() after reopen = %v, want %v", got, want)
	}
}
