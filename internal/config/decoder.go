package config

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// decoder walks the YAML node tree into a Config. It never stops at the
// first problem: every error is collected with its path and line.
type decoder struct {
	errs  []*FieldError
	lines map[string]int // the line of every path seen, for later checks
}

// field decodes the value of one key (or list item) found at path.
// Fields are made by functions like text and intField, which bind the
// destination; a field leaves its destination alone when the value is bad.
type field func(v *yaml.Node, path string)

// keys records the keys of a mapping that were set to a non-null value,
// each true if its value decoded without error. Unknown keys are in it
// (as false): they were set, and reported. It is nil when the node was not
// a mapping.
type keys map[string]bool

// has reports whether key was set, to a good value or not.
func (k keys) has(key string) bool {
	_, ok := k[key]
	return ok
}

// ok reports whether key was set to a good value.
func (k keys) ok(key string) bool { return k[key] }

func (d *decoder) errorf(path, format string, args ...any) {
	d.errorAt(path, d.lineOf(path), format, args...)
}

func (d *decoder) errorAt(path string, line int, format string, args ...any) {
	d.errs = append(d.errs, &FieldError{Path: path, Line: line, Msg: fmt.Sprintf(format, args...)})
}

// lineOf returns the line of path, or of its nearest parent seen (a
// missing key is reported at the line of the mapping that lacks it).
func (d *decoder) lineOf(path string) int {
	for {
		if line, ok := d.lines[path]; ok {
			return line
		}
		if path == "" {
			return 0
		}
		path = parentPath(path)
	}
}

func parentPath(path string) string {
	if i := strings.LastIndexAny(path, ".["); i >= 0 {
		return path[:i]
	}
	return ""
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func indexPath(path string, i int) string { return path + "[" + strconv.Itoa(i) + "]" }

// object decodes mapping n with one field per known key. A null value
// means "not set": its field is not called and the key is not in the
// result, so defaults apply.
func (d *decoder) object(n *yaml.Node, path string, fields map[string]field) keys {
	n = resolve(n)
	if n.Kind != yaml.MappingNode {
		d.errorf(path, "want a mapping, got %s", describe(n))
		return nil
	}
	set := keys{}
	for _, kv := range d.pairs(n, path) {
		p := joinPath(path, kv.key.Value)
		d.lines[p] = kv.key.Line
		f, ok := fields[kv.key.Value]
		if !ok {
			d.errorf(p, "unknown key (want one of %s)", strings.Join(slices.Sorted(maps.Keys(fields)), ", "))
			set[kv.key.Value] = false
			continue
		}
		if isNull(kv.value) {
			continue
		}
		before := len(d.errs)
		f(kv.value, p)
		set[kv.key.Value] = len(d.errs) == before
	}
	return set
}

// require reports each of names that is not set.
func (d *decoder) require(path string, set keys, names ...string) {
	if set == nil {
		return // not a mapping; already reported
	}
	for _, name := range names {
		if !set.has(name) {
			d.errorf(joinPath(path, name), "required")
		}
	}
}

type pair struct{ key, value *yaml.Node }

// pairs returns the entries of mapping n in document order, with YAML merge
// keys ("<<: *defaults") expanded: keys written in n win over merged ones.
func (d *decoder) pairs(n *yaml.Node, path string) []pair {
	var own, merged []pair
	seen := map[string]int{} // key -> line
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), n.Content[i+1]
		switch {
		case k.Kind != yaml.ScalarNode:
			d.errorAt(path, k.Line, "a key must be a plain string, got %s", describe(k))
		case k.ShortTag() == "!!merge":
			merged = append(merged, d.mergedPairs(v, path)...)
		case seen[k.Value] > 0:
			d.errorAt(joinPath(path, k.Value), k.Line, "duplicate key (first at line %d)", seen[k.Value])
		default:
			seen[k.Value] = max(k.Line, 1)
			own = append(own, pair{k, v})
		}
	}
	for _, kv := range merged {
		if seen[kv.key.Value] == 0 {
			seen[kv.key.Value] = max(kv.key.Line, 1)
			own = append(own, kv)
		}
	}
	return own
}

// mergedPairs returns the entries a merge key brings in: one mapping, or a
// list of mappings where earlier ones win.
func (d *decoder) mergedPairs(v *yaml.Node, path string) []pair {
	v = resolve(v)
	sources := []*yaml.Node{v}
	if v.Kind == yaml.SequenceNode {
		sources = v.Content
	}
	var all []pair
	for _, m := range sources {
		m = resolve(m)
		if m.Kind != yaml.MappingNode {
			d.errorAt(path, m.Line, "<< must merge a mapping or a list of mappings, got %s", describe(m))
			continue
		}
		all = append(all, d.pairs(m, path)...)
	}
	return all
}

// listOf makes a field for a YAML list, decoding item i into (*dst)[i]
// with the field elem makes. An empty list yields a nil slice. Bad items
// stay zero; they have been reported, so later checks skip zero values.
func listOf[T any](d *decoder, dst *[]T, elem func(*T) field) field {
	return func(v *yaml.Node, path string) {
		v = resolve(v)
		if v.Kind != yaml.SequenceNode {
			d.errorf(path, "want a list, got %s", describe(v))
			return
		}
		if len(v.Content) == 0 {
			*dst = nil
			return
		}
		out := make([]T, len(v.Content))
		for i, item := range v.Content {
			p := indexPath(path, i)
			d.lines[p] = item.Line
			elem(&out[i])(item, p)
		}
		*dst = out
	}
}

// scalar returns the text of scalar v, or reports that v is no scalar.
func (d *decoder) scalar(v *yaml.Node, path, want string) (string, bool) {
	v = resolve(v)
	if v.Kind != yaml.ScalarNode || isNull(v) {
		d.errorf(path, "want %s, got %s", want, describe(v))
		return "", false
	}
	return v.Value, true
}

// text makes a field for a scalar that parse turns into a T. The error
// parse returns is the message the user sees.
func text[T any](d *decoder, dst *T, want string, parse func(string) (T, error)) field {
	return func(v *yaml.Node, path string) {
		s, ok := d.scalar(v, path, want)
		if !ok {
			return
		}
		x, err := parse(s)
		if err != nil {
			d.errorf(path, "%v", err)
			return
		}
		*dst = x
	}
}

func (d *decoder) str(dst *string) field {
	return text(d, dst, "a string", func(s string) (string, error) { return s, nil })
}

func (d *decoder) boolean(dst *bool) field {
	return func(v *yaml.Node, path string) {
		v = resolve(v)
		if v.Kind != yaml.ScalarNode || v.ShortTag() != "!!bool" || v.Decode(dst) != nil {
			d.errorf(path, "want true or false, got %s", describe(v))
		}
	}
}

type integer interface {
	~int | ~int32 | ~uint8 | ~uint16 | ~uint32
}

// intField makes a field for a YAML integer in lo..hi.
func intField[T integer](d *decoder, dst *T, lo, hi int64) field {
	return func(v *yaml.Node, path string) {
		v = resolve(v)
		if v.Kind != yaml.ScalarNode || v.ShortTag() != "!!int" {
			d.errorf(path, "want an integer, got %s", describe(v))
			return
		}
		var n int64
		if err := v.Decode(&n); err != nil || n < lo || n > hi {
			d.errorf(path, "%s, got %s", rangeText(lo, hi), v.Value)
			return
		}
		*dst = T(n)
	}
}

func rangeText(lo, hi int64) string {
	if hi == math.MaxInt64 {
		return fmt.Sprintf("must be at least %d", lo)
	}
	return fmt.Sprintf("must be %d..%d", lo, hi)
}
