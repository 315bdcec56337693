package metrics

import (
	"errors"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// every family the node exposes is in docs/operating.md's table, and every family
// the table names is exposed.
func TestDocumentedSeriesAreExactlyTheExposedOnes(t *testing.T) {
	m := New()
	if err := m.Register(NewStateCollector(State{
		LogSize: func() uint64 { return 10 }, Pending: func() uint64 { return 1 },
		JournalWrites: func() string { return "aio" },
		Brains:        func() int { return 50 }, Policies: func() int { return 12 },
		Peers: func() []Peer { return []Peer{{Node: "n1", Institution: "root_a", State: "alive"}} },
		Replicas: func() []Replica {
			return []Replica{{Node: "n1", Role: "replica", State: "ok", Lag: 3, CosignedSize: 7}}
		},
	})); err != nil {
		t.Fatal(err)
	}
	m.HTTPRequest("POST /v1/chat/completions", 200, time.Millisecond)
	m.Chat("calculator", "ok", 2*time.Millisecond, time.Millisecond, "model")
	m.Decision("invoke", true, []string{"permit-tenant-members"}, false)
	m.LedgerAppend(time.Millisecond)
	m.LedgerSeal(time.Millisecond)
	m.LedgerFsync(time.Millisecond)
	m.Memory("add", time.Millisecond, nil)
	m.Reload(nil)
	fams, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var exposed []string
	for _, f := range fams {
		if strings.HasPrefix(f.GetName(), "sios_") {
			exposed = append(exposed, f.GetName())
		}
	}
	doc, err := os.ReadFile("../docs/operating.md")
	if err != nil {
		t.Fatal(err)
	}
	var documented []string
	for _, mt := range regexp.MustCompile("(?m)^\\| `(sios_[a-z_]+)` \\|").FindAllStringSubmatch(string(doc), -1) {
		documented = append(documented, mt[1])
	}
	slices.Sort(exposed)
	slices.Sort(documented)
	if !slices.Equal(exposed, documented) {
		t.Fatalf("exposed %v\ndocumented %v", exposed, documented)
	}
}

// The handler serves the text format; a nil *Metrics records nothing and does not fail.
func TestHandlerAndNil(t *testing.T) {
	m := New()
	m.Decision("memory.read", false, nil, false)
	m.Decision("invoke", false, nil, true)
	m.Memory("search", time.Millisecond, errors.New("x"))
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	for _, want := range []string{
		`sios_policy_decisions_total{action="memory.read",effect="deny",policy="default-deny"} 1`,
		`sios_policy_decisions_total{action="invoke",effect="deny",policy="error"} 1`,
		`sios_memory_operations_total{op="search",outcome="error"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("missing %s", want)
		}
	}
	var nilm *Metrics
	nilm.HTTPRequest("x", 200, 0)
	nilm.Chat("b", "ok", 0, 0, "model")
	nilm.Decision("invoke", true, nil, false)
	nilm.Memory("add", 0, nil)
	nilm.Reload(nil)
	nilm.LedgerAppend(0)
	if err := nilm.Register(); err != nil {
		t.Fatal(err)
	}
	if statusText(404) != "404" || statusText(7) != "other" {
		t.Fatal("statusText")
	}
}
