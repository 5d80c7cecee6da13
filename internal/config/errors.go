package config

import (
	"fmt"
	"strings"
)

// FieldError is one problem in a config, located by its YAML field path
// (like "services[0].vips[1]") and line. Path is empty for problems of the
// document as a whole (YAML syntax); Line is 0 when the field has no position.
type FieldError struct {
	Path string
	Line int
	Msg  string
	Err  error // the underlying cause, if any (e.g. reading a password_file)
}

// Error formats the problem as "path: msg (line N)".
func (e *FieldError) Error() string {
	var b strings.Builder
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	if e.Line > 0 {
		fmt.Fprintf(&b, " (line %d)", e.Line)
	}
	return b.String()
}

func (e *FieldError) Unwrap() error { return e.Err }

// Errors is every problem found in one config, in document order.
// File, when set, names the config file on every line of Error().
type Errors struct {
	File string
	List []*FieldError
}

// Error prints one problem per line.
func (e *Errors) Error() string {
	lines := make([]string, len(e.List))
	for i, fe := range e.List {
		lines[i] = fe.Error()
		if e.File != "" {
			lines[i] = e.File + ": " + lines[i]
		}
	}
	return strings.Join(lines, "\n")
}

// Unwrap lets errors.As find each *FieldError.
func (e *Errors) Unwrap() []error {
	errs := make([]error, len(e.List))
	for i, fe := range e.List {
		errs[i] = fe
	}
	return errs
}
