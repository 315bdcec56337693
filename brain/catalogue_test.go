package brain_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sios-project/sios/brain"
	"github.com/sios-project/sios/oar"
)

func loadEmbedded(t testing.TB) *brain.Catalogue {
	t.Helper()
	c, err := brain.Load("")
	if err != nil {
		t.Fatalf("Load embedded: %v", err)
	}
	return c
}

func TestEmbeddedCatalogue(t *testing.T) {
	c := loadEmbedded(t)
	all := c.All()
	kinds := map[string]int{}
	classes := map[string]int{}
	seen := map[string]bool{}
	for i, b := range all {
		if i > 0 && all[i-1].ID >= b.ID {
			t.Errorf("All not sorted by id: %q before %q", all[i-1].ID, b.ID)
		}
		if seen[b.ID] {
			t.Errorf("duplicate id %q", b.ID)
		}
		seen[b.ID] = true
		kinds[b.Kind]++
		classes[b.Classification]++
		if err := b.Validate(); err != nil {
			t.Errorf("%s: %v", b.ID, err)
		}
	}
	if kinds[brain.KindDomain] != 25 || kinds[brain.KindOperational] != 25 || len(all) != 50 {
		t.Errorf("kinds = %v (%d brains), want 25 domain + 25 operational", kinds, len(all))
	}
	for _, cl := range oar.Classifications {
		min := 2
		if cl == "OFFICIAL" || cl == "OFFICIAL-SENSITIVE" || cl == "SECRET" {
			min = 3
		}
		if classes[cl] < min {
			t.Errorf("%d brains at %s, want at least %d", classes[cl], cl, min)
		}
	}
	if len(c.Overridden()) != 0 {
		t.Errorf("Overridden() = %v with no data directory", c.Overridden())
	}
}

// TestEmbeddedBrainQuality holds the embedded catalogue to the standard the design
// asks of it, beyond what Validate demands of an operator's file.
func TestEmbeddedBrainQuality(t *testing.T) {
	for _, b := range loadEmbedded(t).All() {
		t.Run(b.ID, func(t *testing.T) {
			// Domain brains carry the router's vocabulary: many keywords and
			// example questions. Operational brains are never routed to.
			kw, ex := [2]int{3, 10}, [2]int{0, 0}
			if b.Kind == brain.KindDomain {
				kw, ex = [2]int{20, brain.MaxKeywords}, [2]int{6, 12}
			}
			if n := len(b.Keywords); n < kw[0] || n > kw[1] {
				t.Errorf("%d keywords, want %d to %d", n, kw[0], kw[1])
			}
			if n := len(b.Examples); n < ex[0] || n > ex[1] {
				t.Errorf("%d examples, want %d to %d", n, ex[0], ex[1])
			}
			if b.Description == "" {
				t.Error("no description")
			}
			if n := strings.Count(b.SystemPrompt, ". ") + 1; n < 2 || n > 5 || !strings.HasSuffix(b.SystemPrompt, ".") {
				t.Errorf("system prompt has %d sentences, want 2 to 5 ending in '.': %q", n, b.SystemPrompt)
			}
			if b.Model != "" {
				t.Errorf("model %q: embedded brains use the backend's default model", b.Model)
			}
			if d := time.Duration(b.Timeout); d < time.Second || d > 2*time.Minute {
				t.Errorf("timeout %s, want 1s to 2m", d)
			}
			switch b.Kind {
			case brain.KindDomain:
				if b.Backend != brain.BackendDefault || b.Builtin != brain.BuiltinRetrieval {
					t.Errorf("domain brain: backend %q builtin %q, want the node default and retrieval", b.Backend, b.Builtin)
				}
			case brain.KindOperational:
				if b.Backend == brain.BackendBuiltin && b.Builtin == brain.BuiltinNone {
					t.Error("backend builtin without a builtin function")
				}
			}
		})
	}
}

func TestEmbeddedNamedBrains(t *testing.T) {
	c := loadEmbedded(t)
	for _, tc := range []struct {
		id, kind, builtin string
	}{
		{"router", brain.KindOperational, brain.BuiltinRoute},
		{"arbiter", brain.KindOperational, brain.BuiltinNone},
		{"redactor", brain.KindOperational, brain.BuiltinRedact},
		{"classifier", brain.KindOperational, brain.BuiltinClassify},
		{"summariser", brain.KindOperational, brain.BuiltinSummarise},
		{"memory-recall", brain.KindOperational, brain.BuiltinRetrieval},
		{"audit-explainer", brain.KindOperational, brain.BuiltinAuditExplain},
		{"policy-explainer", brain.KindOperational, brain.BuiltinPolicyExplain},
		{"calculator", brain.KindOperational, brain.BuiltinArithmetic},
		{"clinical-coding", brain.KindDomain, brain.BuiltinRetrieval},
		{"defence-procurement", brain.KindDomain, brain.BuiltinRetrieval},
		{"intelligence-analysis", brain.KindDomain, brain.BuiltinRetrieval},
	} {
		t.Run(tc.id, func(t *testing.T) {
			b, ok := c.Get(tc.id)
			if !ok {
				t.Fatal("missing")
			}
			if b.Kind != tc.kind || b.Builtin != tc.builtin {
				t.Errorf("kind %q builtin %q, want %q %q", b.Kind, b.Builtin, tc.kind, tc.builtin)
			}
		})
	}
	if b, _ := c.Get("intelligence-analysis"); b.Classification != "TOP-SECRET" {
		t.Errorf("intelligence-analysis is %s, want TOP-SECRET", b.Classification)
	}
	if _, ok := c.Get("no-such-brain"); ok {
		t.Error("Get found a brain that does not exist")
	}
}

func TestCatalogueHandsOutCopies(t *testing.T) {
	c := loadEmbedded(t)
	b, _ := c.Get("tax")
	b.Title = "changed"
	b.Keywords[0] = "changed"
	again, _ := c.Get("tax")
	if again.Title == "changed" || again.Keywords[0] == "changed" {
		t.Error("changing a returned brain changed the catalogue")
	}
	orig := c.All()[0]
	all := c.All()
	all[0].Tools[0] = "changed"
	all[0] = nil
	if !reflect.DeepEqual(c.All()[0], orig) {
		t.Error("changing All's result changed the catalogue")
	}
}

func TestBrainJSON(t *testing.T) {
	b, _ := loadEmbedded(t).Get("clinical-coding")
	js, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"id":"clinical-coding"`, `"system_prompt":`, `"max_tokens":2048`, `"timeout":"1m0s"`,
		`"rate_limit":{"requests_per_minute":60,"burst":10}`, `"builtin":"retrieval"`} {
		if !strings.Contains(string(js), want) {
			t.Errorf("JSON lacks %s: %s", want, js)
		}
	}
	var back brain.Brain
	if err := json.Unmarshal(js, &back); err != nil {
		t.Fatal(err)
	}
	if back.Timeout != b.Timeout || back.ID != b.ID || back.Validate() != nil {
		t.Errorf("JSON round trip: %+v", back)
	}
	if err := json.Unmarshal([]byte(`{"timeout":30}`), &back); err == nil {
		t.Error("a bare number was accepted as a timeout")
	}
}

func BenchmarkLoadEmbedded(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := brain.Load(""); err != nil {
			b.Fatal(err)
		}
	}
}
