package api

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestBadBodies sends every kind of bad body and wants a 400 (413 when too
// large) naming the field at fault.
func TestBadBodies(t *testing.T) {
	tests := []struct {
		name, body, wantField, wantMsg string
	}{
		{"empty", ``, "body", "want one JSON object"},
		{"not JSON", `{"name": "a",}`, "body", "invalid character"},
		{"truncated", `{"name": "a"`, "body", "unexpected end"},
		{"two values", `{"name": "a", "port": 1} {}`, "body", "after top-level value"},
		{"array", `[{"name": "a", "port": 1}]`, "body", "want a JSON object"},
		{"null", `null`, "body", "want a JSON object"},
		{"unknown field", `{"name": "a", "port": 1, "nmae": "b"}`, "nmae", "unknown field"},
		{"field in another case", `{"Name": "a", "port": 1}`, "Name", "unknown field"},
		{"empty key", `{"name": "a", "port": 1, "": 1}`, `""`, "unknown field"},
		{"unknown check field", `{"name": "a", "port": 1, "check": {"type": "tcp", "intervl": "1s"}}`, "check.intervl", "unknown field"},
		{"duplicate key", `{"name": "a", "port": 80, "port": 8080}`, "port", "given twice"},
		{"duplicate key in check", `{"name": "a", "port": 1, "check": {"type": "tcp", "rise": 2, "rise": 3}}`, "check.rise", "given twice"},
		{"duplicate key differing in escape", `{"name": "a", "port": 1, "n\u0061me": "b"}`, "name", "given twice"},
		{"name a number", `{"name": 7, "port": 1}`, "name", "want a string, got number"},
		{"port a string", `{"name": "a", "port": "80"}`, "port", "want an integer 0..65535, got string"},
		{"port too big", `{"name": "a", "port": 65536}`, "port", "got number 65536"},
		{"port negative", `{"name": "a", "port": -1}`, "port", "got number -1"},
		{"port fractional", `{"name": "a", "port": 80.5}`, "port", "got number 80.5"},
		{"ports not an array", `{"name": "a", "port": 1, "ports": 80}`, "ports", "want an array"},
		{"ports of strings", `{"name": "a", "port": 1, "ports": ["80"]}`, "ports", "got string"},
		{"masquerade a string", `{"name": "a", "port": 1, "masquerade": "yes"}`, "masquerade", "want true or false"},
		{"check a string", `{"name": "a", "port": 1, "check": "tcp"}`, "check", "want an object"},
		{"check rise a string", `{"name": "a", "port": 1, "check": {"type": "tcp", "rise": "2"}}`, "check.rise", "want an integer"},
		{"bad address", `{"name": "a", "port": 1, "address": "198.51.100.300"}`, "address", "198.51.100.300"},
		{"address with prefix", `{"name": "a", "port": 1, "address": "198.51.100.3/32"}`, "address", "want an IPv4 or IPv6 address"},
		{"bad interval", `{"name": "a", "port": 1, "check": {"type": "tcp", "interval": "1 sec"}}`, "check.interval", `"1 sec"`},
		{"bare number interval", `{"name": "a", "port": 1, "check": {"type": "tcp", "interval": "5"}}`, "check.interval", "want a duration"},
		{"bad fast interval", `{"name": "a", "port": 1, "check": {"type": "tcp", "fast_interval": "soon"}}`, "check.fast_interval", "want a duration"},
		{"bad timeout", `{"name": "a", "port": 1, "check": {"type": "tcp", "timeout": "x"}}`, "check.timeout", "want a duration"},
		{"bad expect_status", `{"name": "a", "port": 1, "check": {"type": "http", "expect_status": "2xx"}}`, "check.expect_status", `"2xx"`},
		{"reversed expect_status", `{"name": "a", "port": 1, "check": {"type": "http", "expect_status": "299-200"}}`, "check.expect_status", `"299-200"`},
		{"too large", `{"name": "` + strings.Repeat("a", maxBody) + `", "port": 1}`, "body", "larger than 65536 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := serve(newFakeLBs(), "POST", "/loadbalancer", tt.body)
			wantCode := http.StatusBadRequest
			if tt.name == "too large" {
				wantCode = http.StatusRequestEntityTooLarge
			}
			if rec.Code != wantCode {
				t.Fatalf("%d %s, want %d", rec.Code, rec.Body, wantCode)
			}
			e := errorBody(t, rec)
			if e.Field != tt.wantField || !strings.Contains(e.Message, tt.wantMsg) {
				t.Errorf("got field %q message %q, want field %q and a message with %q", e.Field, e.Message, tt.wantField, tt.wantMsg)
			}
		})
	}
}

// checkReply asserts what every reply to a request body must be: never a
// 5xx, always JSON, an error with a message, and a 400 or 413 naming the
// field. It returns the load balancer of a success reply.
func checkReply(t *testing.T, code int, ct string, body []byte) (LoadBalancer, bool) {
	t.Helper()
	if code >= 500 {
		t.Fatalf("status %d: %s", code, body)
	}
	if ct != "application/json" || !json.Valid(body) {
		t.Fatalf("status %d, Content-Type %q: not JSON: %q", code, ct, body)
	}
	if code >= 400 {
		var e Error
		if err := json.Unmarshal(body, &e); err != nil || e.Message == "" {
			t.Fatalf("status %d: %s is not an error body", code, body)
		}
		if (code == http.StatusBadRequest || code == http.StatusRequestEntityTooLarge) && e.Field == "" {
			t.Fatalf("status %d names no field: %s", code, body)
		}
		return LoadBalancer{}, false
	}
	var l LoadBalancer
	if err := json.Unmarshal(body, &l); err != nil || l.UUID == "" {
		t.Fatalf("status %d: %s is not a load balancer", code, body)
	}
	return l, true
}

var createSeeds = []string{
	`{"name": "a", "port": 80}`,
	`{"name": "web", "port": 80}`,
	`{"name": "a", "port": 80, "protocol": "udp", "mode": "local", "pool": "p", "address": "::1", "ports": [1, 2],
	  "masquerade": true, "on_empty": "announce", "check": {"type": "http", "path": "/", "expect_status": "200-299",
	  "interval": "1s", "timeout": "1s", "rise": 1, "fall": 1}}`,
	`{"name": "a", "port": 70000}`,
	`{"check": {"interval": "-1h"}}`,
	`{"check": null, "ports": null}`,
	`{"name": "\u00e9", "port": 1, "NAME": 2}`,
	`{"name": "a", "port": 1, "port": 2}`,
	`{"name": "a", "port": 1, "check": {"type": "tcp", "type": "http"}}`,
	`[]`, `""`, `{`, ``,
}

func FuzzCreateLoadBalancer(f *testing.F) {
	for _, s := range createSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := serve(newFakeLBs(), "POST", "/loadbalancer", string(body))
		l, ok := checkReply(t, rec.Code, rec.Header().Get("Content-Type"), rec.Body.Bytes())
		if !ok {
			return
		}
		// Accepted: the body was one object of known fields, and the
		// reply is the load balancer it named.
		var req LoadBalancerRequest
		dec := json.NewDecoder(strings.NewReader(string(body)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			t.Fatalf("accepted %q, which does not decode strictly: %v", body, err)
		}
		if l.Name != req.Name || l.Port != req.Port {
			t.Fatalf("accepted %q but answered %s:%d", body, l.Name, l.Port)
		}
		if n, m := topLevelKeys(t, body); n != m {
			t.Fatalf("accepted %q with %d top-level keys, %d of them distinct", body, n, m)
		}
	})
}

func FuzzAddBackend(f *testing.F) {
	for _, s := range []string{
		`{"ip": "10.0.0.2", "port": 80}`, `{"ip": "10.0.0.1", "port": 8080}`, `{"ip": "fe80::1%eth0", "port": 1, "weight": 9}`,
		`{"port": 80}`, `{"ip": 1}`, `{"ip": "10.0.0.2", "port": 1, "weight": 4294967296}`, `{}`, `null`, `{"ip": "a"}{}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := serve(newFakeLBs(), "POST", "/loadbalancer/lb-1/backend", string(body))
		l, ok := checkReply(t, rec.Code, rec.Header().Get("Content-Type"), rec.Body.Bytes())
		if ok && len(l.Backends) != 2 {
			t.Fatalf("accepted %q: %d backends, want 2", body, len(l.Backends))
		}
	})
}

// topLevelKeys counts the keys of the JSON object body, and the distinct
// ones: a check of duplicateKey that does not use it.
func topLevelKeys(t *testing.T, body []byte) (n, distinct int) {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("accepted %q: %v", body, err)
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	if _, err := dec.Token(); err != nil { // '{'
		t.Fatal(err)
	}
	for dec.More() {
		if _, err := dec.Token(); err != nil { // key
			t.Fatal(err)
		}
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
		n++
	}
	return n, len(m)
}
