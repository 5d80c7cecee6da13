package config

import (
	"fmt"
	"net/netip"
	"reflect"
	"testing"
	"time"
)

func TestHashAndSecrets(t *testing.T) {
	dir := t.TempDir()
	key := writeFile(t, dir, "peer.key", "one\n")
	file := writeFile(t, dir, "vipd.yaml", peerWithKey(key))
	load := func() (*Config, string) {
		t.Helper()
		cfg, err := Load(file)
		if err != nil {
			t.Fatal(err)
		}
		h, err := cfg.Hash()
		if err != nil {
			t.Fatal(err)
		}
		return cfg, h
	}
	first, firstHash := load()
	if again, h := load(); h != firstHash || !again.SameSecrets(first) {
		t.Errorf("the same config: hashes %s and %s, same secrets %v", firstHash, h, again.SameSecrets(first))
	}
	// The hash is public: it must not depend on the password.
	writeFile(t, dir, "peer.key", "two\n")
	second, secondHash := load()
	if secondHash != firstHash {
		t.Errorf("a new key in the password file changed the public hash")
	}
	if second.SameSecrets(first) {
		t.Errorf("a new key in the password file: SameSecrets is still true")
	}
	writeFile(t, dir, "vipd.yaml", peerWithKey(key)+"      hold_time: 30s\n")
	if _, third := load(); third == secondHash {
		t.Errorf("a new hold time left the hash at %s", secondHash)
	}
}

func mustHash(t testing.TB, c *Config) string {
	t.Helper()
	h, err := c.Hash()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// Every field of Config must reach the hash, or a reload that changes only
// that field reports "unchanged" and ignores it. The walk covers fields
// added later without anyone listing them here.
func TestHashCoversEveryField(t *testing.T) {
	base := mustParse(t, string(readTestdata(t, "example.yaml")))
	fillEmpty(reflect.ValueOf(base).Elem())
	baseHash := mustHash(t, base)
	var walk func(path string, v reflect.Value)
	checked := 0
	walk = func(path string, v reflect.Value) {
		switch v.Kind() {
		case reflect.Struct:
			if v.Type().PkgPath() != "github.com/vipd/vipd/internal/config" {
				break // netip and time values: leaves
			}
			for i := range v.NumField() {
				f := v.Type().Field(i)
				if !f.IsExported() {
					t.Errorf("%s.%s is unexported: encoding/json skips it, so Hash cannot see it", path, f.Name)
					continue
				}
				walk(path+"."+f.Name, v.Field(i))
			}
			return
		case reflect.Slice:
			for i := range v.Len() {
				walk(fmt.Sprintf("%s[%d]", path, i), v.Index(i))
			}
			return
		case reflect.Pointer:
			if !v.IsNil() {
				walk(path, v.Elem())
			}
			return
		}
		if v.Type() == reflect.TypeFor[Secret]() {
			return // a secret: SameSecrets covers it, see TestHashAndSecrets
		}
		old := reflect.ValueOf(v.Interface())
		v.Set(changed(t, path, v))
		if mustHash(t, base) == baseHash {
			t.Errorf("%s changed but the hash did not", path)
		}
		v.Set(old)
		checked++
	}
	walk("Config", reflect.ValueOf(base).Elem())
	if mustHash(t, base) != baseHash {
		t.Fatal("the walk did not restore the config")
	}
	if checked < 40 {
		t.Errorf("only %d fields checked: the walk is broken", checked)
	}
}

// fillEmpty gives every empty slice in v one zero element and every nil
// pointer a zero value, so the walk reaches the fields of every type.
func fillEmpty(v reflect.Value) {
	switch v.Kind() {
	case reflect.Struct:
		if v.Type().PkgPath() == "github.com/vipd/vipd/internal/config" {
			for i := range v.NumField() {
				if v.Type().Field(i).IsExported() {
					fillEmpty(v.Field(i))
				}
			}
		}
	case reflect.Slice:
		if v.Len() == 0 {
			v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		}
		for i := range v.Len() {
			fillEmpty(v.Index(i))
		}
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		fillEmpty(v.Elem())
	}
}

// changed returns a value of v's type that differs from v.
func changed(t *testing.T, path string, v reflect.Value) reflect.Value {
	n := reflect.New(v.Type()).Elem()
	switch x := v.Interface().(type) {
	case netip.Addr:
		n.Set(reflect.ValueOf(netip.MustParseAddr("203.0.113.77")))
		if x == n.Interface() {
			n.Set(reflect.ValueOf(netip.MustParseAddr("203.0.113.78")))
		}
		return n
	case netip.Prefix:
		n.Set(reflect.ValueOf(netip.MustParsePrefix("203.0.113.0/24")))
		return n
	case time.Duration:
		n.SetInt(int64(x) + int64(time.Millisecond))
		return n
	case map[string]string:
		m := map[string]string{"changed": "yes"}
		for k, v := range x {
			m[k] = v
		}
		n.Set(reflect.ValueOf(m))
		return n
	}
	switch v.Kind() {
	case reflect.String:
		n.SetString(v.String() + "x")
	case reflect.Bool:
		n.SetBool(!v.Bool())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n.SetInt(v.Int() ^ 1)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n.SetUint(v.Uint() ^ 1)
	default:
		t.Fatalf("%s: no way to change a %s; teach changed()", path, v.Type())
	}
	return n
}
