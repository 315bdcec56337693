// Package brain is the catalogue of specialist brains and the deterministic routers.
//
// A brain is a specialist profile: what it is for, the system prompt it runs under,
// the backend and model that serve it, its classification ceiling, the tools it may
// call and the budgets it runs within. Fifty brains ship embedded (25 domain, 25
// operational); operators add brains, or replace embedded ones whole, with YAML files
// in the data directory's brains/ folder. The format is published in docs/brains.md.
//
// Guarantees:
//   - Load accepts a catalogue only if every file decodes strictly (unknown fields are
//     errors) and every brain passes Validate; any failure is an error naming the file
//     and, where there is one, the line. There is no partial catalogue.
//   - Sizes are bounded by the caps in limits.go.
//   - A Catalogue never changes after Load and is safe for concurrent use; the brains
//     it hands out are copies, so callers cannot alter it.
//   - Route is a pure function of the catalogue and the prompt: the same inputs give
//     the same brain and the same reason, with no clocks, randomness or I/O.
//   - Router.Route, the embedding router, is a pure function of the catalogue, the
//     prompt and the vectors its Embedder returns; when the Embedder fails it is Route,
//     and the reason says so. Brain vectors are cached under a hash of the model's
//     name and the text, so they are never stale.
//
// The package decides nothing about who may use a brain: the policy package does, using
// the classification ceiling and tool allowlist recorded here.
package brain

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/sios-project/sios/oar"
)

// Brain kinds.
const (
	KindDomain      = "domain"      // a subject specialist; the router chooses among these
	KindOperational = "operational" // a function the node itself uses: routing, redaction, …
)

// Backend values other than a URL.
const (
	BackendDefault = ""        // the node's default backend
	BackendBuiltin = "builtin" // the offline builtin backend; requires Builtin
)

// Builtin functions: what the builtin backend runs for a brain when no language model
// serves it. Only append to this list: a published name never changes meaning.
const (
	BuiltinNone          = ""
	BuiltinRetrieval     = "retrieval"      // ranked retrieval from the tenant's memory, quoted and cited
	BuiltinRedact        = "redact"         // deterministic redaction of personal and marked data
	BuiltinClassify      = "classify"       // deterministic classification marking
	BuiltinArithmetic    = "arithmetic"     // exact arithmetic
	BuiltinAuditExplain  = "audit-explain"  // explains audit records, seals and receipts
	BuiltinPolicyExplain = "policy-explain" // explains policy decisions
	BuiltinSummarise     = "summarise"      // extractive summary
	BuiltinRoute         = "route"          // the deterministic router (Catalogue.Route)
)

// builtins lists the valid values of Brain.Builtin other than BuiltinNone, in order.
var builtins = []string{
	BuiltinRetrieval, BuiltinRedact, BuiltinClassify, BuiltinArithmetic,
	BuiltinAuditExplain, BuiltinPolicyExplain, BuiltinSummarise, BuiltinRoute,
}

// Brain is one specialist profile. The field tags are the brain file format
// (docs/brains.md) and its JSON form.
type Brain struct {
	ID             string    `yaml:"id" json:"id"`
	Kind           string    `yaml:"kind" json:"kind"`
	Title          string    `yaml:"title" json:"title"`
	Description    string    `yaml:"description,omitempty" json:"description,omitempty"`
	SystemPrompt   string    `yaml:"system_prompt" json:"system_prompt"`
	Backend        string    `yaml:"backend,omitempty" json:"backend,omitempty"`
	Model          string    `yaml:"model,omitempty" json:"model,omitempty"`
	Classification string    `yaml:"classification" json:"classification"`
	Tools          []string  `yaml:"tools,omitempty" json:"tools,omitempty"`
	MaxTokens      int       `yaml:"max_tokens" json:"max_tokens"`
	Timeout        Duration  `yaml:"timeout" json:"timeout"`
	RateLimit      RateLimit `yaml:"rate_limit" json:"rate_limit"`
	Arbitration    bool      `yaml:"arbitration,omitempty" json:"arbitration,omitempty"`
	Keywords       []string  `yaml:"keywords,omitempty" json:"keywords,omitempty"`
	Examples       []string  `yaml:"examples,omitempty" json:"examples,omitempty"`
	Builtin        string    `yaml:"builtin,omitempty" json:"builtin,omitempty"`
	// Parameters are the request members callers may set for this brain, forwarded to
	// its backend (default DefaultParameters; [] allows none).
	Parameters []string `yaml:"parameters,omitempty" json:"parameters,omitempty"`
	// Pin fixes sampling members for every request; a caller may not set them.
	Pin Pin `yaml:"pin,omitempty" json:"pin,omitempty"`
	// Options are backend-specific options sent with every request (Ollama's num_ctx, …);
	// a caller's options, when "options" is in Parameters, are merged over them.
	Options map[string]any `yaml:"options,omitempty" json:"options,omitempty"`
	// ClientTools names the client-side functions callers may offer the model through
	// this brain; "*" allows any.
	ClientTools []string `yaml:"client_tools,omitempty" json:"client_tools,omitempty"`
	// Images says whether callers may send image parts: the brain's model takes images.
	Images bool `yaml:"images,omitempty" json:"images,omitempty"`
}

// Pin is the sampling members a brain fixes.
type Pin struct {
	Temperature      *float64 `yaml:"temperature,omitempty" json:"temperature,omitempty"`
	TopP             *float64 `yaml:"top_p,omitempty" json:"top_p,omitempty"`
	FrequencyPenalty *float64 `yaml:"frequency_penalty,omitempty" json:"frequency_penalty,omitempty"`
	PresencePenalty  *float64 `yaml:"presence_penalty,omitempty" json:"presence_penalty,omitempty"`
	Seed             *int64   `yaml:"seed,omitempty" json:"seed,omitempty"`
}

// Parameters a brain may let callers set. Only append.
var knownParameters = []string{"temperature", "top_p", "frequency_penalty", "presence_penalty", "stop", "seed", "response_format", "user", "options"}

// DefaultParameters are the members a brain lets callers set when its file names none:
// the sampling and format members, not backend options.
var DefaultParameters = []string{"temperature", "top_p", "frequency_penalty", "presence_penalty", "stop", "seed", "response_format", "user"}

// Allows says whether b lets callers set the request member name.
func (b *Brain) Allows(name string) bool { return contains(b.Parameters, name) }

// AllowsClientTool says whether b lets callers offer the client-side function name.
func (b *Brain) AllowsClientTool(name string) bool {
	return contains(b.ClientTools, "*") || contains(b.ClientTools, name)
}

// RateLimit is a token bucket: RequestsPerMinute refill, Burst capacity.
type RateLimit struct {
	RequestsPerMinute int `yaml:"requests_per_minute" json:"requests_per_minute"`
	Burst             int `yaml:"burst" json:"burst"`
}

// clone returns a deep copy of b.
func (b *Brain) clone() *Brain {
	c := *b
	c.Tools = cloneStrings(b.Tools)
	c.Keywords = cloneStrings(b.Keywords)
	c.Examples = cloneStrings(b.Examples)
	c.Parameters = cloneStrings(b.Parameters)
	c.ClientTools = cloneStrings(b.ClientTools)
	if b.Options != nil {
		c.Options = make(map[string]any, len(b.Options))
		for k, v := range b.Options {
			c.Options[k] = v // values are read-only scalars or maps the catalogue never changes
		}
	}
	return &c
}

func cloneStrings(s []string) []string {
	if s == nil {
		return nil
	}
	return append([]string(nil), s...)
}

// A fieldError is a validation failure of one field; path locates it in the brain
// file (keys, and decimal indexes into lists) so Load can report the line.
type fieldError struct {
	path []string
	msg  string
}

func (e *fieldError) Error() string { return strings.Join(e.path, ".") + ": " + e.msg }

func fail(msg string, path ...string) *fieldError { return &fieldError{path: path, msg: msg} }

// Validate checks every field of a complete brain: one as Load returns it, with the
// defaults for omitted fields filled in. The error names the field.
func (b *Brain) Validate() error {
	if err := b.validate(); err != nil {
		return err
	}
	return nil
}

func (b *Brain) validate() *fieldError {
	if !validID(b.ID) {
		return fail(fmt.Sprintf("%q is not a valid id: 1 to %d of a-z, 0-9 and '-', not starting or ending with '-' (MaxIDLen)", b.ID, MaxIDLen), "id")
	}
	if b.Kind != KindDomain && b.Kind != KindOperational {
		return fail(fmt.Sprintf("%q is not one of %q, %q", b.Kind, KindDomain, KindOperational), "kind")
	}
	if err := checkText(b.Title, MaxTitleLen, "MaxTitleLen", true, false); err != "" {
		return fail(err, "title")
	}
	if err := checkText(b.Description, MaxDescriptionLen, "MaxDescriptionLen", false, true); err != "" {
		return fail(err, "description")
	}
	if err := checkText(b.SystemPrompt, MaxSystemPrompt, "MaxSystemPrompt", true, true); err != "" {
		return fail(err, "system_prompt")
	}
	if err := checkBackend(b.Backend); err != "" {
		return fail(err, "backend")
	}
	if len(b.Model) > MaxModelLen {
		return fail(fmt.Sprintf("longer than %d bytes (MaxModelLen)", MaxModelLen), "model")
	}
	for _, r := range b.Model {
		if r <= ' ' || r > '~' {
			return fail(fmt.Sprintf("%q: only printable ASCII without spaces is allowed", b.Model), "model")
		}
	}
	if b.Backend == BackendBuiltin && b.Model != "" {
		return fail("must be empty when backend is \"builtin\"", "model")
	}
	if oar.ClassificationRank(b.Classification) < 0 {
		return fail(fmt.Sprintf("%q is not one of %s", b.Classification, strings.Join(oar.Classifications, ", ")), "classification")
	}
	if err := checkList(b.Tools, MaxTools, "MaxTools", "tools", validToolName,
		fmt.Sprintf("is not a valid tool name: 1 to %d of a-z, 0-9, '.', '_' and '-', starting with a letter or digit (MaxToolNameLen)", MaxToolNameLen)); err != nil {
		return err
	}
	if b.MaxTokens <= 0 || b.MaxTokens > MaxMaxTokens {
		return fail(fmt.Sprintf("%d is out of range: must be 1 to %d (MaxMaxTokens)", b.MaxTokens, MaxMaxTokens), "max_tokens")
	}
	if d := time.Duration(b.Timeout); d <= 0 || d > MaxTimeout {
		return fail(fmt.Sprintf("%s is out of range: must be more than 0 and at most %s (MaxTimeout)", d, MaxTimeout), "timeout")
	}
	if n := b.RateLimit.RequestsPerMinute; n <= 0 || n > MaxRequestsPerMinute {
		return fail(fmt.Sprintf("%d is out of range: must be 1 to %d (MaxRequestsPerMinute)", n, MaxRequestsPerMinute), "rate_limit", "requests_per_minute")
	}
	if n := b.RateLimit.Burst; n <= 0 || n > MaxBurst {
		return fail(fmt.Sprintf("%d is out of range: must be 1 to %d (MaxBurst)", n, MaxBurst), "rate_limit", "burst")
	}
	if err := checkList(b.Keywords, MaxKeywords, "MaxKeywords", "keywords", validKeyword,
		fmt.Sprintf("is not a valid keyword: one lowercase word of letters and digits, at most %d bytes (MaxKeywordLen)", MaxKeywordLen)); err != nil {
		return err
	}
	if err := checkExamples(b.Examples); err != nil {
		return err
	}
	if b.Builtin != BuiltinNone && !contains(builtins, b.Builtin) {
		return fail(fmt.Sprintf("%q is not one of %s (or empty)", b.Builtin, strings.Join(builtins, ", ")), "builtin")
	}
	if err := checkList(b.Parameters, len(knownParameters), "the known parameters", "parameters",
		func(s string) bool { return contains(knownParameters, s) }, "is not a request member a brain can allow: "+strings.Join(knownParameters, ", ")); err != nil {
		return err
	}
	if err := b.Pin.check(); err != nil {
		return err
	}
	if len(b.Options) > MaxOptions {
		return fail(fmt.Sprintf("%d entries, more than %d (MaxOptions)", len(b.Options), MaxOptions), "options")
	}
	if raw, err := json.Marshal(b.Options); err != nil || len(raw) > MaxOptionsBytes {
		return fail(fmt.Sprintf("must encode as a JSON object of at most %d bytes (MaxOptionsBytes)", MaxOptionsBytes), "options")
	}
	if err := checkList(b.ClientTools, MaxTools, "MaxTools", "client_tools", func(s string) bool { return s == "*" || validClientTool(s) },
		fmt.Sprintf("is not a function name: 1 to %d of letters, digits, '_' and '-' (or \"*\")", MaxToolNameLen)); err != nil {
		return err
	}
	if b.Backend == BackendBuiltin && b.Builtin == BuiltinNone {
		return fail("is \"builtin\" but the builtin field names no function for it to run", "backend")
	}
	return nil
}

// validID reports whether id is a valid brain id: 1 to MaxIDLen bytes of a-z, 0-9 and
// '-', neither starting nor ending with '-'.
func validID(id string) bool {
	if id == "" || len(id) > MaxIDLen || id[0] == '-' || id[len(id)-1] == '-' {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

func validToolName(s string) bool {
	if s == "" || len(s) > MaxToolNameLen || s[0] == '.' || s[0] == '_' || s[0] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// validClientTool: OpenAI's function names are letters, digits, '_' and '-'.
func validClientTool(s string) bool {
	if s == "" || len(s) > MaxToolNameLen {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// check refuses pinned values out of their members' ranges.
func (p Pin) check() *fieldError {
	in := func(v *float64, lo, hi float64, name string) *fieldError {
		if v != nil && (*v < lo || *v > hi) {
			return fail(fmt.Sprintf("%g is out of range %g to %g", *v, lo, hi), "pin", name)
		}
		return nil
	}
	for _, e := range []*fieldError{
		in(p.Temperature, 0, 2, "temperature"), in(p.TopP, 0, 1, "top_p"),
		in(p.FrequencyPenalty, -2, 2, "frequency_penalty"), in(p.PresencePenalty, -2, 2, "presence_penalty"),
	} {
		if e != nil {
			return e
		}
	}
	return nil
}

// validKeyword: a keyword must be exactly one router token, or it could never match.
func validKeyword(s string) bool {
	if len(s) > MaxKeywordLen {
		return false
	}
	t := tokenise(s)
	return len(t) == 1 && t[0] == s
}

// checkList checks a list's length, each entry, and that no entry repeats.
func checkList(list []string, max int, maxName, field string, ok func(string) bool, bad string) *fieldError {
	if len(list) > max {
		return fail(fmt.Sprintf("%d entries, more than %d (%s)", len(list), max, maxName), field)
	}
	seen := make(map[string]int, len(list))
	for i, s := range list {
		if !ok(s) {
			return fail(fmt.Sprintf("%q %s", s, bad), field, fmt.Sprint(i))
		}
		if j, dup := seen[s]; dup {
			return fail(fmt.Sprintf("%q repeats entry %d", s, j), field, fmt.Sprint(i))
		}
		seen[s] = i
	}
	return nil
}

// checkExamples checks the example questions: at most MaxExamples, each one
// non-blank line of at most MaxExampleLen bytes, none repeated.
func checkExamples(list []string) *fieldError {
	if len(list) > MaxExamples {
		return fail(fmt.Sprintf("%d entries, more than %d (MaxExamples)", len(list), MaxExamples), "examples")
	}
	seen := make(map[string]int, len(list))
	for i, s := range list {
		if err := checkText(s, MaxExampleLen, "MaxExampleLen", true, false); err != "" {
			return fail(err, "examples", fmt.Sprint(i))
		}
		if j, dup := seen[s]; dup {
			return fail(fmt.Sprintf("repeats entry %d", j), "examples", fmt.Sprint(i))
		}
		seen[s] = i
	}
	return nil
}

// checkText checks a free-text field; it returns "" when the text is acceptable.
func checkText(s string, max int, maxName string, required, multiline bool) string {
	switch {
	case required && strings.TrimSpace(s) == "":
		return "required"
	case len(s) > max:
		return fmt.Sprintf("%d bytes, more than %d (%s)", len(s), max, maxName)
	case !utf8.ValidString(s):
		return "is not valid UTF-8"
	}
	for _, r := range s {
		if r == '\n' || r == '\t' {
			if !multiline && r == '\n' {
				return "must be a single line"
			}
			continue
		}
		if unicode.IsControl(r) {
			return fmt.Sprintf("contains the control character %U", r)
		}
	}
	return ""
}

func checkBackend(s string) string {
	if s == BackendDefault || s == BackendBuiltin {
		return ""
	}
	if len(s) > MaxBackendLen {
		return fmt.Sprintf("longer than %d bytes (MaxBackendLen)", MaxBackendLen)
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "" {
		return fmt.Sprintf("%q is not \"\", \"builtin\" or an http(s) URL of an OpenAI-compatible server", s)
	}
	if u.User != nil {
		return "must not carry credentials: a brain file is not a secret store"
	}
	if u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return fmt.Sprintf("%q: a backend URL takes no query or fragment", s)
	}
	return ""
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
