package lb

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// FuzzCheckName: every name checkName accepts is valid UTF-8 of at most
// MaxNameLen bytes, holds no control or format character (nothing that
// could forge a log line or hide in a terminal), has no edge spaces, and
// survives the JSON round trip of the API and the store unchanged.
func FuzzCheckName(f *testing.F) {
	for _, s := range []string{"test loadbalancer", "web", "Käse-Shop #1", "a\tb", "a\nb", " x", "x ", "\xff",
		"a\u200bb", "\u00a0", "日本語の名前", "\u202eevil", strings.Repeat("é", 65), ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if checkName(name) != "" {
			return
		}
		if !utf8.ValidString(name) || len(name) == 0 || len(name) > MaxNameLen || strings.TrimSpace(name) != name {
			t.Fatalf("accepted %q", name)
		}
		for _, r := range name {
			if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
				t.Fatalf("accepted %q with %U", name, r)
			}
		}
		b, err := json.Marshal(name)
		if err != nil {
			t.Fatal(err)
		}
		var back string
		if err := json.Unmarshal(b, &back); err != nil || back != name {
			t.Fatalf("%q came back from JSON as %q (%v)", name, back, err)
		}
	})
}
