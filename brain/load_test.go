package brain_test

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sios-project/sios/brain"
)

// writeBrains writes files (name → content) into a fresh data directory's brains/.
func writeBrains(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "brains"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, "brains", name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// minimal is a brain with only the required fields; line numbers in tests count on it.
const minimal = `id: ward-rota
kind: domain
title: Ward rota
system_prompt: Answer questions about the ward rota.
classification: OFFICIAL
`

func TestLoadOverrideAndAdd(t *testing.T) {
	dir := writeBrains(t, map[string]string{
		"10-tax.yaml": `# replaces the embedded tax brain whole
id: tax
kind: domain
title: Tax (local model)
system_prompt: You are our in-house tax adviser. Cite HMRC manuals.
backend: http://127.0.0.1:11434/v1
model: llama3.1:8b-instruct-q4_K_M
classification: SECRET
max_tokens: 512
timeout: 2m30s
keywords: [tax, vat]
`,
		"20-new.yml": minimal + "keywords: [rota, ward]\n---\nid: ward-rota-ops\nkind: operational\ntitle: Rota ops\nsystem_prompt: Publish the rota.\nclassification: OFFICIAL\nbackend: builtin\nbuiltin: summarise\n",
		"README.md":  "not a brain, ignored",
		".swap.yaml": "not: [valid",
		"notes.txt":  "ignored",
	})
	c, err := brain.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(c.All()), 52; got != want {
		t.Errorf("%d brains, want %d", got, want)
	}
	if got, want := c.Overridden(), []string{"tax", "ward-rota", "ward-rota-ops"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Overridden() = %v, want %v", got, want)
	}
	tax, _ := c.Get("tax")
	want := &brain.Brain{
		ID: "tax", Kind: "domain", Title: "Tax (local model)",
		SystemPrompt:   "You are our in-house tax adviser. Cite HMRC manuals.",
		Backend:        "http://127.0.0.1:11434/v1",
		Model:          "llama3.1:8b-instruct-q4_K_M",
		Classification: "SECRET", MaxTokens: 512, Timeout: brain.Duration(150 * time.Second),
		// Whole-brain replacement: what the file leaves out takes the defaults,
		// not the embedded brain's values (no tools, no builtin, default rate).
		RateLimit:  brain.RateLimit{RequestsPerMinute: brain.DefaultRequestsPerMinute, Burst: brain.DefaultBurst},
		Keywords:   []string{"tax", "vat"},
		Parameters: brain.DefaultParameters,
	}
	if !reflect.DeepEqual(tax, want) {
		t.Errorf("tax override:\n got %+v\nwant %+v", tax, want)
	}
	rota, ok := c.Get("ward-rota")
	if !ok {
		t.Fatal("added brain missing")
	}
	if rota.MaxTokens != brain.DefaultMaxTokens || time.Duration(rota.Timeout) != brain.DefaultTimeout || rota.Arbitration {
		t.Errorf("defaults not applied: %+v", rota)
	}
	if b, _ := c.Route("who is on the ward rota tonight"); b.ID != "ward-rota" {
		t.Errorf("added domain brain not routed to: got %s", b.ID)
	}
}

func TestLoadMissingOrEmptyDirectory(t *testing.T) {
	for name, dir := range map[string]string{
		"no data dir":       "",
		"no brains/ folder": t.TempDir(),
		"empty brains/":     writeBrains(t, nil),
	} {
		t.Run(name, func(t *testing.T) {
			c, err := brain.Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			if len(c.All()) != 50 {
				t.Errorf("%d brains", len(c.All()))
			}
		})
	}
}

func TestLoadDefaultsOnlyWhenAbsent(t *testing.T) {
	for _, tc := range []struct {
		name  string
		extra string
		check func(*brain.Brain) bool
	}{
		{"null max_tokens takes default", "max_tokens: ~\n", func(b *brain.Brain) bool { return b.MaxTokens == brain.DefaultMaxTokens }},
		{"partial rate_limit", "rate_limit: {burst: 3}\n", func(b *brain.Brain) bool {
			return b.RateLimit == brain.RateLimit{RequestsPerMinute: brain.DefaultRequestsPerMinute, Burst: 3}
		}},
		{"anchor and alias", "model: &m qwen2.5:7b\ndescription: *m\n", func(b *brain.Brain) bool { return b.Description == "qwen2.5:7b" }},
		{"https backend", "backend: https://models.internal.example:8443/v1\n", func(b *brain.Brain) bool { return b.Backend != "" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := brain.Load(writeBrains(t, map[string]string{"b.yaml": minimal + tc.extra}))
			if err != nil {
				t.Fatal(err)
			}
			b, _ := c.Get("ward-rota")
			if !tc.check(b) {
				t.Errorf("got %+v", b)
			}
		})
	}
}

func TestLoadBadFiles(t *testing.T) {
	big := minimal + "description: " + strings.Repeat("x", brain.MaxFileSize) + "\n"
	longPrompt := strings.Replace(minimal, "Answer questions about the ward rota.", strings.Repeat("y", brain.MaxSystemPrompt+1), 1)
	for _, tc := range []struct {
		name    string
		content string
		line    int // 0: the error names no line
		want    string
	}{
		{"unclosed list", "id: ward-rota\nkind: domain\ntools: [a, b\ntitle: x\n", 3, "did not find expected ',' or ']'"},
		{"unclosed list on line 1", "tools: [a, b\ntitle: x\n", 2, "did not find expected ',' or ']'"},
		{"list item in a mapping", minimal + "- rota\n", 6, "did not find expected key"},
		{"indented key", "id: x\nkind: domain\n  title: y\n", 3, "mapping values are not allowed"},
		{"unterminated quote", minimal + "description: \"open\n", 6, "found unexpected end of stream"},
		{"undefined alias", minimal + "description: *nope\n", 0, "unknown anchor 'nope'"},
		{"second document broken", minimal + "---\nid: other\n  kind: domain\n", 8, "mapping values are not allowed"},
		{"tab indentation", "id: x\n\tkind: domain\n", 2, "tab"},
		{"unknown field", minimal + "colour: blue\n", 6, `unknown field "colour"`},
		{"unknown rate_limit field", minimal + "rate_limit:\n  requests_per_minute: 5\n  per_hour: 9\n", 8, `unknown field "per_hour" in rate_limit`},
		{"repeated key", minimal + "title: again\n", 6, `"title" already defined at line 3`},
		{"wrong type", minimal + "max_tokens: lots\n", 6, "cannot unmarshal"},
		{"bad classification", strings.Replace(minimal, "OFFICIAL", "RESTRICTED", 1), 5, `classification: "RESTRICTED" is not one of OFFICIAL, OFFICIAL-SENSITIVE, SECRET, TOP-SECRET`},
		{"lowercase classification", strings.Replace(minimal, "OFFICIAL", "official", 1), 5, "classification"},
		{"bad kind", strings.Replace(minimal, "kind: domain", "kind: clinical", 1), 2, `kind: "clinical" is not one of "domain", "operational"`},
		{"negative max_tokens", minimal + "max_tokens: -5\n", 6, "max_tokens: -5 is out of range"},
		{"zero max_tokens", minimal + "max_tokens: 0\n", 6, "max_tokens: 0 is out of range"},
		{"huge max_tokens", minimal + "max_tokens: 99999999\n", 6, "MaxMaxTokens"},
		{"bad duration", minimal + "timeout: soon\n", 6, `"soon" is not a duration`},
		{"unitless duration", minimal + "timeout: 30\n", 6, "not a duration string"},
		{"negative duration", minimal + "timeout: -1s\n", 6, "timeout: -1s is out of range"},
		{"long duration", minimal + "timeout: 2h\n", 6, "MaxTimeout"},
		{"zero burst", minimal + "rate_limit:\n  requests_per_minute: 5\n  burst: 0\n", 8, "rate_limit.burst: 0 is out of range"},
		{"bad id", strings.Replace(minimal, "ward-rota", "Ward_Rota", 1), 1, `id: "Ward_Rota" is not a valid id`},
		{"long id", strings.Replace(minimal, "ward-rota", strings.Repeat("a", brain.MaxIDLen+1), 1), 1, "MaxIDLen"},
		{"null title", strings.Replace(minimal, "title: Ward rota", "title: ~", 1), 3, "title: required"},
		{"merge key", minimal + "rate_limit:\n  <<: {burst: 2}\n", 7, "merge keys (<<) are not supported"},
		{"missing title", strings.Replace(minimal, "title: Ward rota\n", "", 1), 1, `brain "ward-rota": title: required`},
		{"missing system prompt", strings.Replace(minimal, "system_prompt: Answer questions about the ward rota.\n", "", 1), 1, "system_prompt: required"},
		{"multi-line title", strings.Replace(minimal, "title: Ward rota", `title: "Ward\nrota"`, 1), 3, "single line"},
		{"control character", minimal + "description: \"bell \\a\"\n", 6, "control character"},
		{"system prompt too long", longPrompt, 4, "MaxSystemPrompt"},
		{"keyword with space", minimal + "keywords:\n  - rota\n  - night shift\n", 8, `keywords.1: "night shift" is not a valid keyword`},
		{"uppercase keyword", minimal + "keywords: [Rota]\n", 6, "not a valid keyword"},
		{"repeated keyword", minimal + "keywords:\n  - rota\n  - rota\n", 8, `"rota" repeats entry 0`},
		{"repeated example", minimal + "examples:\n  - Who is on nights?\n  - Who is on nights?\n", 8, `examples.1: repeats entry 0`},
		{"blank example", minimal + "examples: [\"  \"]\n", 6, "examples.0: required"},
		{"multi-line example", minimal + "examples:\n  - \"who is\\non nights\"\n", 7, "examples.0: must be a single line"},
		{"long example", minimal + "examples: [" + strings.Repeat("a", brain.MaxExampleLen+1) + "]\n", 6, "MaxExampleLen"},
		{"too many examples", minimal + "examples: [" + strings.TrimSuffix(strings.Repeat("q, ", brain.MaxExamples+1), ", ") + "]\n", 6, "more than 32 (MaxExamples)"},
		{"bad tool name", minimal + "tools: [memory.search, \"rm -rf\"]\n", 6, "not a valid tool name"},
		{"backend scheme", minimal + "backend: ftp://models.internal/v1\n", 6, "not \"\", \"builtin\" or an http(s) URL"},
		{"backend credentials", minimal + "backend: https://user:secret@models.internal/v1\n", 6, "must not carry credentials"},
		{"backend without host", minimal + "backend: http:///v1\n", 6, "backend"},
		{"builtin backend without function", minimal + "backend: builtin\n", 6, "backend: is \"builtin\" but the builtin field names no function"},
		{"builtin backend with model", minimal + "backend: builtin\nbuiltin: summarise\nmodel: llama3\n", 8, "model: must be empty"},
		{"unknown builtin", minimal + "builtin: oracle\n", 6, `builtin: "oracle" is not one of`},
		{"model with space", minimal + "model: llama 3\n", 6, "printable ASCII"},
		{"duplicate id in file", minimal + "---\n" + minimal, 7, `brain "ward-rota" is defined again (first at line 1)`},
		{"not a mapping", "- id: x\n", 1, "not a brain"},
		{"scalar document", "hello\n", 1, `document 1 is "hello", not a brain`},
		{"list where a string belongs", minimal + "model: [a]\n", 6, "cannot unmarshal !!seq into string"},
		{"empty file", "", 0, "no brain in file"},
		{"comments only", "# nothing here\n", 0, "no brain in file"},
		{"oversized file", big, 0, "more than 1048576 bytes (MaxFileSize)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeBrains(t, map[string]string{"bad.yaml": tc.content})
			c, err := brain.Load(dir)
			if err == nil {
				t.Fatalf("accepted; catalogue of %d", len(c.All()))
			}
			file := filepath.Join(dir, "brains", "bad.yaml")
			prefix := file + ": "
			if tc.line > 0 {
				prefix = fmt.Sprintf("%s:%d: ", file, tc.line)
			}
			msg := err.Error()
			t.Log(strings.TrimPrefix(msg, dir+string(filepath.Separator)))
			if !strings.HasPrefix(msg, prefix) || !strings.Contains(msg, tc.want) || strings.Contains(msg, "\n") {
				t.Errorf("error %q\nwant one line starting %q and containing %q", msg, prefix, tc.want)
			}
		})
	}
}

// Empty documents (a leading or trailing "---", or two in a row) hold no brain and
// are skipped, as YAML tools usually do; a file of nothing else is still an error.
func TestLoadEmptyDocuments(t *testing.T) {
	other := strings.Replace(minimal, "ward-rota", "other", 1)
	for _, tc := range []struct {
		name, content string
		brains        int
	}{
		{"leading", "---\n" + minimal, 51},
		{"trailing", minimal + "---\n", 51},
		{"between", minimal + "---\n---\n" + other, 52},
		{"only separators", "---\n---\n", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := brain.Load(writeBrains(t, map[string]string{"b.yaml": tc.content}))
			if tc.brains == 0 {
				if err == nil || !strings.Contains(err.Error(), "no brain in file") {
					t.Errorf("got %v, want no brain in file", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(c.All()) != tc.brains {
				t.Errorf("%d brains, want %d", len(c.All()), tc.brains)
			}
		})
	}
}

func TestLoadSameIDInTwoFiles(t *testing.T) {
	dir := writeBrains(t, map[string]string{"a.yaml": minimal, "b.yaml": "# again\n" + minimal})
	_, err := brain.Load(dir)
	want := fmt.Sprintf(`%s:2: brain "ward-rota" is already defined at %s:1`,
		filepath.Join(dir, "brains", "b.yaml"), filepath.Join(dir, "brains", "a.yaml"))
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error %v\nwant %s", err, want)
	}
}

func TestLoadTooManyBrains(t *testing.T) {
	var sb strings.Builder
	for i := 0; i <= brain.MaxBrains-50; i++ {
		fmt.Fprintf(&sb, "---\n%s", strings.Replace(minimal, "ward-rota", fmt.Sprintf("extra-%d", i), 1))
	}
	_, err := brain.Load(writeBrains(t, map[string]string{"many.yaml": sb.String()}))
	if err == nil || !strings.Contains(err.Error(), "MaxBrains") || !strings.Contains(err.Error(), "many.yaml") {
		t.Errorf("error %v, want one naming many.yaml and MaxBrains", err)
	}
	// Exactly at the limit is fine.
	sb.Reset()
	for i := 0; i < brain.MaxBrains-50; i++ {
		fmt.Fprintf(&sb, "---\n%s", strings.Replace(minimal, "ward-rota", fmt.Sprintf("extra-%d", i), 1))
	}
	c, err := brain.Load(writeBrains(t, map[string]string{"many.yaml": sb.String()}))
	if err != nil || len(c.All()) != brain.MaxBrains {
		t.Errorf("at the limit: %v", err)
	}
}

func TestLoadUnreadable(t *testing.T) {
	t.Run("brains is a file", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "brains"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := brain.Load(dir); err == nil || !strings.Contains(err.Error(), "brains") {
			t.Errorf("got %v", err)
		}
	})
	t.Run("directory named like a brain file", func(t *testing.T) {
		dir := writeBrains(t, nil)
		if err := os.Mkdir(filepath.Join(dir, "brains", "odd.yaml"), 0o755); err != nil {
			t.Fatal(err)
		}
		if _, err := brain.Load(dir); err == nil || !strings.Contains(err.Error(), "odd.yaml: not a regular file") {
			t.Errorf("got %v", err)
		}
	})
}
