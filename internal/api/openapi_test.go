package api

import (
	"encoding/json"
	"maps"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// schema is the part of a JSON Schema the tests compare with Go types.
type schema struct {
	Type       string             `json:"type"`
	Ref        string             `json:"$ref"`
	OneOf      []schema           `json:"oneOf"`
	Items      *schema            `json:"items"`
	Properties map[string]*schema `json:"properties"`
	Required   []string           `json:"required"`
	// AdditionalProperties is false on a struct's schema, and a map's
	// value schema on a map's.
	AdditionalProperties json.RawMessage `json:"additionalProperties"`
}

type parameter struct {
	Name string `json:"name"`
	In   string `json:"in"`
}

type openAPIDoc struct {
	OpenAPI    string                                `json:"openapi"`
	Paths      map[string]map[string]json.RawMessage `json:"paths"`
	Components struct {
		Schemas   map[string]*schema         `json:"schemas"`
		Responses map[string]json.RawMessage `json:"responses"`
	} `json:"components"`
}

func loadOpenAPI(t *testing.T) openAPIDoc {
	t.Helper()
	var doc openAPIDoc
	if err := json.Unmarshal(openAPI, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi.json: version %q, want 3.x", doc.OpenAPI)
	}
	return doc
}

// TestOpenAPIRoutes holds the document's paths and methods to the routes
// Handler registers: every one is described, and nothing else is.
func TestOpenAPIRoutes(t *testing.T) {
	doc := loadOpenAPI(t)
	want := map[string][]string{}
	for _, e := range (&Server{}).endpoints() {
		want[e.pattern] = append(want[e.pattern], strings.ToLower(e.method))
	}
	got := map[string][]string{}
	for path, item := range doc.Paths {
		for key := range item {
			if key != "parameters" {
				got[path] = append(got[path], key)
			}
		}
	}
	sorted := cmp.Transformer("sort", func(s []string) []string { return slices.Sorted(slices.Values(s)) })
	if diff := cmp.Diff(want, got, sorted); diff != "" {
		t.Errorf("openapi.json paths (-routes +document):\n%s", diff)
	}
}

// TestOpenAPIPathParameters checks that every {name} in a path is declared
// as a path parameter of each of its operations, and nothing more.
func TestOpenAPIPathParameters(t *testing.T) {
	doc := loadOpenAPI(t)
	wild := regexp.MustCompile(`\{([^}]+)\}`)
	for path, item := range doc.Paths {
		var want []string
		for _, m := range wild.FindAllStringSubmatch(path, -1) {
			want = append(want, m[1])
		}
		common := pathParams(t, item["parameters"])
		for method, raw := range item {
			if method == "parameters" {
				continue
			}
			var op struct {
				Parameters json.RawMessage `json:"parameters"`
			}
			if err := json.Unmarshal(raw, &op); err != nil {
				t.Fatalf("%s %s: %v", method, path, err)
			}
			got := append(pathParams(t, op.Parameters), common...)
			slices.Sort(want)
			slices.Sort(got)
			if !slices.Equal(want, got) {
				t.Errorf("%s %s: path parameters %v, want %v", method, path, got, want)
			}
		}
	}
}

func pathParams(t *testing.T, raw json.RawMessage) []string {
	t.Helper()
	if raw == nil {
		return nil
	}
	var ps []parameter
	if err := json.Unmarshal(raw, &ps); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range ps {
		if p.In == "path" {
			names = append(names, p.Name)
		}
	}
	return names
}

// wireTypes maps each schema of the document to the Go type it describes.
var wireTypes = map[string]reflect.Type{
	"Error":               reflect.TypeFor[Error](),
	"FieldError":          reflect.TypeFor[FieldError](),
	"Health":              reflect.TypeFor[Health](),
	"DrainResult":         reflect.TypeFor[DrainResult](),
	"Deleted":             reflect.TypeFor[Deleted](),
	"ReloadResult":        reflect.TypeFor[ReloadResult](),
	"Status":              reflect.TypeFor[Status](),
	"PeerStatus":          reflect.TypeFor[PeerStatus](),
	"PeerConnection":      reflect.TypeFor[PeerConnection](),
	"BFDStatus":           reflect.TypeFor[BFDStatus](),
	"ServiceStatus":       reflect.TypeFor[ServiceStatus](),
	"VIPStatus":           reflect.TypeFor[VIPStatus](),
	"HostSetting":         reflect.TypeFor[HostSetting](),
	"XDPStatus":           reflect.TypeFor[XDPStatus](),
	"XDPInterfaceStatus":  reflect.TypeFor[XDPInterfaceStatus](),
	"XDPBackendStatus":    reflect.TypeFor[XDPBackendStatus](),
	"KubernetesStatus":    reflect.TypeFor[KubernetesStatus](),
	"ClusterStatus":       reflect.TypeFor[ClusterStatus](),
	"ClusterNode":         reflect.TypeFor[ClusterNode](),
	"LoadBalancerNode":    reflect.TypeFor[LoadBalancerNode](),
	"Check":               reflect.TypeFor[Check](),
	"LoadBalancerRequest": reflect.TypeFor[LoadBalancerRequest](),
	"BackendRequest":      reflect.TypeFor[BackendRequest](),
	"LoadBalancer":        reflect.TypeFor[LoadBalancer](),
	"Backend":             reflect.TypeFor[LoadBalancerBackend](),
}

// TestOpenAPISchemas holds every schema to its Go type: the same
// properties as json names, required exactly when not omitempty, and
// matching types.
func TestOpenAPISchemas(t *testing.T) {
	doc := loadOpenAPI(t)
	if diff := cmp.Diff(slices.Sorted(maps.Keys(wireTypes)), slices.Sorted(maps.Keys(doc.Components.Schemas))); diff != "" {
		t.Fatalf("schemas (-Go types +document):\n%s", diff)
	}
	for name, s := range doc.Components.Schemas {
		typ := wireTypes[name]
		var props, required []string
		for f := range typ.Fields() {
			tag, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
			props = append(props, tag)
			if !strings.Contains(opts, "omitempty") && !strings.Contains(opts, "omitzero") {
				required = append(required, tag)
			}
			if p := s.Properties[tag]; p != nil {
				if err := matchType(p, f.Type); err != "" {
					t.Errorf("%s.%s: %s", name, tag, err)
				}
			}
		}
		if diff := cmp.Diff(slices.Sorted(slices.Values(props)), slices.Sorted(maps.Keys(s.Properties))); diff != "" {
			t.Errorf("%s properties (-Go +document):\n%s", name, diff)
		}
		if diff := cmp.Diff(slices.Sorted(slices.Values(required)), slices.Sorted(slices.Values(s.Required))); diff != "" {
			t.Errorf("%s required (-Go +document):\n%s", name, diff)
		}
	}
}

// matchType says how schema s does not describe Go type t; "" if it does.
func matchType(s *schema, t reflect.Type) string {
	if len(s.OneOf) == 2 && s.OneOf[1].Type == "null" {
		if t.Kind() != reflect.Pointer {
			return "nullable, but " + t.String() + " is not a pointer"
		}
		return matchType(&s.OneOf[0], t.Elem())
	}
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if s.Ref != "" {
		name := strings.TrimPrefix(s.Ref, "#/components/schemas/")
		if wireTypes[name] != t {
			return s.Ref + " does not describe " + t.String()
		}
		return ""
	}
	var ok bool
	switch s.Type {
	case "string":
		ok = t.Kind() == reflect.String || t == reflect.TypeFor[time.Time]()
	case "integer":
		ok = t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64
	case "boolean":
		ok = t.Kind() == reflect.Bool
	case "object":
		var values schema
		if t.Kind() != reflect.Map || t.Key().Kind() != reflect.String || json.Unmarshal(s.AdditionalProperties, &values) != nil {
			return "object of values, but " + t.String()
		}
		return matchType(&values, t.Elem())
	case "array":
		if t.Kind() != reflect.Slice || s.Items == nil {
			return "array, but " + t.String()
		}
		return matchType(s.Items, t.Elem())
	}
	if !ok {
		return "type " + s.Type + ", but " + t.String()
	}
	return ""
}

// TestOpenAPIRefs checks that every $ref in the document resolves.
func TestOpenAPIRefs(t *testing.T) {
	doc := loadOpenAPI(t)
	refs := regexp.MustCompile(`"\$ref": "#/components/(\w+)/(\w+)"`).FindAllSubmatch(openAPI, -1)
	if n := strings.Count(string(openAPI), `"$ref"`); n == 0 || n != len(refs) {
		t.Fatalf("%d $refs, %d of them of the form #/components/KIND/NAME", n, len(refs))
	}
	for _, m := range refs {
		kind, name := string(m[1]), string(m[2])
		var found bool
		switch kind {
		case "schemas":
			_, found = doc.Components.Schemas[name]
		case "responses":
			_, found = doc.Components.Responses[name]
		}
		if !found {
			t.Errorf("$ref #/components/%s/%s resolves to nothing", kind, name)
		}
	}
}

func TestServeOpenAPI(t *testing.T) {
	rec := serve(newFakeLBs(), http.MethodGet, "/openapi.json", "")
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/json" || rec.Body.String() != string(openAPI) {
		t.Errorf("GET /openapi.json: %d %q, want the document", rec.Code, rec.Header().Get("Content-Type"))
	}
}
