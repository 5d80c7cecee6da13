package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// maxAliasGrowth bounds how many nodes YAML aliases may add to a document,
// so that a "billion laughs" file cannot keep Parse busy for hours.
const maxAliasGrowth = 1 << 18

// readDocument parses data into the root node of its only YAML document.
// An empty document yields a nil root. Errors are an *Errors.
func readDocument(data []byte) (root *yaml.Node, err error) {
	defer func() {
		// The YAML library panics on a few internal errors; bad input must
		// never take the daemon down.
		if r := recover(); r != nil {
			root, err = nil, documentError(&FieldError{Msg: fmt.Sprintf("invalid YAML: %v", r)})
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, documentError(syntaxError(err))
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, documentError(syntaxError(err))
	default:
		return nil, documentError(&FieldError{Line: next.Line, Msg: "only one YAML document is allowed"})
	}
	if err := checkAliases(&doc, len(data)+maxAliasGrowth); err != nil {
		return nil, documentError(err)
	}
	if len(doc.Content) == 0 {
		return nil, nil
	}
	return doc.Content[0], nil
}

func documentError(e *FieldError) error { return &Errors{List: []*FieldError{e}} }

var yamlErrorLine = regexp.MustCompile(`^line (\d+): (.*)$`)

// syntaxError turns the YAML library's "yaml: line N: problem" into a
// FieldError, so that syntax errors print like every other error.
func syntaxError(err error) *FieldError {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	m := yamlErrorLine.FindStringSubmatch(msg)
	if m == nil {
		return &FieldError{Msg: "invalid YAML: " + msg, Err: err}
	}
	line, _ := strconv.Atoi(m[1])
	return &FieldError{Line: line, Msg: "invalid YAML: " + m[2], Err: err}
}

// checkAliases rejects alias cycles and documents whose aliases expand to
// more than limit nodes. The YAML parser builds alias nodes without
// checking either; the decoder below would loop or blow up on them.
func checkAliases(doc *yaml.Node, limit int) *FieldError {
	c := aliasCheck{size: map[*yaml.Node]int{}, active: map[*yaml.Node]bool{}, limit: limit}
	_, err := c.expand(doc)
	return err
}

type aliasCheck struct {
	size   map[*yaml.Node]int  // expanded size of each node already walked
	active map[*yaml.Node]bool // nodes on the current path, to find cycles
	limit  int
}

func (c *aliasCheck) expand(n *yaml.Node) (int, *FieldError) {
	if n.Kind == yaml.AliasNode {
		if c.active[n.Alias] {
			return 0, &FieldError{Line: n.Line, Msg: fmt.Sprintf("alias *%s refers to a node that contains it", n.Value)}
		}
		n = n.Alias
	}
	if s, ok := c.size[n]; ok {
		return s, nil
	}
	c.active[n] = true
	total := 1
	for _, child := range n.Content {
		s, err := c.expand(child)
		if err != nil {
			return 0, err
		}
		total += s
		if total > c.limit {
			return 0, &FieldError{Line: n.Line, Msg: "YAML aliases expand to too many nodes"}
		}
	}
	delete(c.active, n)
	c.size[n] = total
	return total, nil
}

// resolve follows an alias to the node it names.
func resolve(n *yaml.Node) *yaml.Node {
	if n != nil && n.Kind == yaml.AliasNode {
		return n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	n = resolve(n)
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// describe names what a node holds, for "want X, got Y" messages.
func describe(n *yaml.Node) string {
	n = resolve(n)
	switch {
	case n.Kind == yaml.MappingNode:
		return "a mapping"
	case n.Kind == yaml.SequenceNode:
		return "a list"
	case isNull(n):
		return "null"
	}
	const maxShown = 40
	if len(n.Value) > maxShown {
		return strconv.Quote(n.Value[:maxShown]) + "…"
	}
	return strconv.Quote(n.Value)
}
