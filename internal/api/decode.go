package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"slices"
	"strings"
)

// maxBody caps a request body. A load balancer's spec is a few hundred
// bytes; the cap only stops a client from making the daemon buffer much.
const maxBody = 64 << 10

// decodeBody reads r's body into dst, a pointer to a request struct. The
// body must be exactly one JSON object whose keys are dst's json names,
// spelled exactly (encoding/json alone would take "NAME" for "name"); the
// Content-Type header is not looked at, so `curl -d` works as it is.
// Every error is an *HTTPError naming the field, or "body" when the body
// as a whole is wrong.
func decodeBody(w http.ResponseWriter, r *http.Request, dst any) error {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		if tooBig, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return &HTTPError{Status: http.StatusRequestEntityTooLarge, Field: "body",
				Message: fmt.Sprintf("larger than %d bytes", tooBig.Limit)}
		}
		return badRequest("body", "read: %v", err)
	}
	var raw any
	if err := json.Unmarshal(data, &raw); err != nil {
		return badRequest("body", "want one JSON object: %v", err)
	}
	obj, ok := raw.(map[string]any)
	if !ok {
		return badRequest("body", "want a JSON object")
	}
	if field, found := duplicateKey(data); found {
		return badRequest(field, "given twice; each key may appear once")
	}
	if field, found := unknownField(obj, reflect.TypeOf(dst).Elem(), ""); found {
		return badRequest(field, "unknown field")
	}
	if err := json.Unmarshal(data, dst); err != nil {
		if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok && te.Field != "" {
			return badRequest(te.Field, "want %s, got %s", describeType(te.Type), te.Value)
		}
		return badRequest("body", "%v", err)
	}
	return nil
}

// duplicateKey returns the path ("check.type", "ports[0].x") of the first
// key that appears twice in one object of data, which must be valid JSON.
// encoding/json keeps the last of two equal keys without a word, so
// {"port": 80, "port": 8080} would silently mean 8080.
func duplicateKey(data []byte) (string, bool) {
	dec := json.NewDecoder(bytes.NewReader(data))
	path, found := dupIn(dec, "")
	return path, found
}

// dupIn reads one JSON value from dec and looks for a repeated key in it;
// path names the value. A decode error ends the walk: the caller has
// checked the syntax already.
func dupIn(dec *json.Decoder, path string) (string, bool) {
	tok, err := dec.Token()
	if err != nil {
		return "", false
	}
	switch tok {
	case json.Delim('{'):
		seen := map[string]bool{}
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return "", false
			}
			key, _ := kt.(string)
			sub := key
			if key == "" {
				sub = `""` // a field name the reply can show
			}
			if path != "" {
				sub = path + "." + sub
			}
			if seen[key] {
				return sub, true
			}
			seen[key] = true
			if p, found := dupIn(dec, sub); found {
				return p, true
			}
		}
		_, _ = dec.Token() // '}'
	case json.Delim('['):
		for i := 0; dec.More(); i++ {
			if p, found := dupIn(dec, fmt.Sprintf("%s[%d]", path, i)); found {
				return p, true
			}
		}
		_, _ = dec.Token() // ']'
	}
	return "", false
}

// badRequest is a 400 naming field.
func badRequest(field, format string, args ...any) *HTTPError {
	return &HTTPError{Status: http.StatusBadRequest, Field: field, Message: fmt.Sprintf(format, args...)}
}

// unknownField returns the path ("check.intervl") of the first key of obj,
// in sorted order, that struct type t has no json field for. Nested
// objects are checked against struct (or pointer to struct) fields. An
// empty key shows as "".
func unknownField(obj map[string]any, t reflect.Type, prefix string) (string, bool) {
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		f, ok := jsonField(t, k)
		if !ok {
			if k == "" {
				k = `""`
			}
			return prefix + k, true
		}
		ft := f.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if sub, isObj := obj[k].(map[string]any); isObj && ft.Kind() == reflect.Struct {
			if p, found := unknownField(sub, ft, prefix+k+"."); found {
				return p, true
			}
		}
	}
	return "", false
}

// jsonField returns struct type t's field whose json name is exactly name.
func jsonField(t reflect.Type, name string) (reflect.StructField, bool) {
	for f := range t.Fields() {
		if tag, _, _ := strings.Cut(f.Tag.Get("json"), ","); f.IsExported() && tag == name {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// describeType names what JSON value a field of Go type t takes.
func describeType(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		max := uint64(1)<<(t.Bits()-1)<<1 - 1
		return fmt.Sprintf("an integer 0..%d", max)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Slice, reflect.Array:
		return "an array"
	default:
		return "an object"
	}
}
