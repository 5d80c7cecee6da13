package lb

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestNodesSelector(t *testing.T) {
	labels := map[string]string{"rack": "a", "example.com/zone": "z1"}
	for _, tc := range []struct {
		nodes []string
		want  bool
	}{
		{nil, true},
		{[]string{"n1"}, true},
		{[]string{"n2"}, false},
		{[]string{"rack=a"}, true},
		{[]string{"rack=b"}, false},
		{[]string{"zone=z1"}, false}, // the full label name counts
		{[]string{"example.com/zone=z1"}, true},
		{[]string{"n2", "rack=b", "example.com/zone=z1"}, true},
		{[]string{"rack="}, false},
	} {
		if got := (Spec{Nodes: tc.nodes}).Selects("n1", labels); got != tc.want {
			t.Errorf("%q selects n1 %v, want %v", tc.nodes, got, tc.want)
		}
	}
}

func TestNodesValidate(t *testing.T) {
	many := make([]string, MaxNodes+1)
	for i := range many {
		many[i] = fmt.Sprintf("n%d", i)
	}
	for _, tc := range []struct {
		nodes       []string
		field, want string // want "" for valid
	}{
		{[]string{"n1", "rack=a", "example.com/zone=z1", "rack="}, "", ""},
		{[]string{"N_1"}, "nodes[0]", "want a node name or a label"},
		{[]string{"n1", "a b=c"}, "nodes[1]", "label name"},
		{[]string{"rack=a b"}, "nodes[0]", "label value"},
		{[]string{"n1", "n1"}, "nodes[1]", "listed twice"},
		{many, "nodes", "at most 64"},
	} {
		err := Spec{Name: "web", Port: 80, Nodes: tc.nodes}.WithDefaults().Validate()
		var fe *FieldError
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q: %v, want valid", tc.nodes, err)
		case tc.want == "":
		case !errors.As(err, &fe) || fe.Field != tc.field || !strings.Contains(fe.Msg, tc.want):
			t.Errorf("%q: %v, want %s: …%s…", tc.nodes, err, tc.field, tc.want)
		}
	}
	if got := (Spec{Nodes: []string{}}).WithDefaults().Nodes; got != nil {
		t.Errorf("an empty selector defaults to %q, want nil (every node)", got)
	}
}
