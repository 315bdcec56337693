package brain_test

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/sios-project/sios/brain"
)

// FuzzLoadBrainFile feeds arbitrary bytes to Load as a brain file. Load must not
// panic; an error must name the file; an accepted catalogue must hold only brains
// that pass Validate, route without panicking, and survive a round trip: a brain
// written back out as YAML loads to the same brain.
func FuzzLoadBrainFile(f *testing.F) {
	// One brain of each kind from the embedded catalogue: whole catalogue files are
	// slow inputs that the fuzzer spends its time minimising.
	for _, name := range []string{"domain.yaml", "operational.yaml"} {
		b, err := os.ReadFile(filepath.Join("catalogue", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(bytes.SplitN(b, []byte("\n---\n"), 2)[0])
	}
	f.Add([]byte(minimal))
	f.Add([]byte(minimal + "keywords: [rota]\ntools: [memory.search]\ntimeout: 1m30s\nrate_limit: {requests_per_minute: 5, burst: 1}\n---\n" + strings.Replace(minimal, "ward-rota", "b", 1)))
	f.Add([]byte(minimal + "backend: builtin\nbuiltin: redact\n"))
	f.Add([]byte(minimal + "examples:\n  - Who is on nights?\n  - \"Swap my late, please\"\nkeywords: [rota, nights]\n"))
	f.Add([]byte(minimal + "tools: []\nkeywords: []\narbitration: false\nmodel: ''\n"))
	f.Add([]byte("a: &a [*a, *a]\n"))
	f.Add([]byte("id: x\nkind: [\n"))
	f.Add([]byte("---\n---\n"))
	// One data directory for every input: a fuzzing process runs inputs one at a
	// time, and a fresh directory per input would halve the rate.
	dir := f.TempDir()
	file := filepath.Join(dir, "brains", "fuzz.yaml")
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(file, data, 0o644); err != nil {
			t.Fatal(err)
		}
		c, err := brain.Load(dir)
		if err != nil {
			if !strings.HasPrefix(err.Error(), file) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error is not one line naming the file: %q", err)
			}
			return
		}
		if len(c.Overridden()) == 0 {
			t.Fatal("accepted a file with no brain")
		}
		var again bytes.Buffer
		enc := yaml.NewEncoder(&again)
		for _, id := range c.Overridden() {
			b, ok := c.Get(id)
			if !ok {
				t.Fatalf("Overridden lists %q but Get does not find it", id)
			}
			if err := b.Validate(); err != nil {
				t.Fatalf("accepted an invalid brain: %v", err)
			}
			if err := enc.Encode(b); err != nil {
				t.Fatalf("encode %q: %v", id, err)
			}
		}
		enc.Close()
		if err := os.WriteFile(file, again.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		c2, err := brain.Load(dir)
		if err != nil {
			t.Fatalf("accepted brains written back out do not load: %v\n%s", err, again.Bytes())
		}
		if !reflect.DeepEqual(c.All(), c2.All()) {
			t.Fatalf("round trip changed the catalogue:\n%s", again.Bytes())
		}
		c.Route(string(data))
	})
}

// FuzzRoute feeds arbitrary prompts to the lexical router: it must not panic, must
// return a domain brain or the default with a one-line reason, and must give the same
// answer twice.
func FuzzRoute(f *testing.F) {
	for _, p := range []string{
		"What are the side effects of metformin for a patient with kidney disease?",
		"code this discharge summary ICD-10", "", "s", "what's", "\xff\xfe", "ÉLAN café 61508",
		strings.Repeat("contract ", 100), "taxes taxes taxes", "ıİ ß ǅ",
	} {
		f.Add(p)
	}
	c, err := brain.Load("")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, prompt string) {
		b, reason := c.Route(prompt)
		if b.Kind != brain.KindDomain && b.ID != brain.DefaultRoute {
			t.Fatalf("routed to %s (%s)", b.ID, b.Kind)
		}
		if reason == "" || strings.Contains(reason, "\n") {
			t.Fatalf("reason %q", reason)
		}
		if b2, reason2 := c.Route(prompt); b2.ID != b.ID || reason2 != reason {
			t.Fatalf("not deterministic: %s %q then %s %q", b.ID, reason, b2.ID, reason2)
		}
	})
}
