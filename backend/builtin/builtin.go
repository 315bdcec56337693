// Package builtin is the offline model backend that makes a fresh node useful with no
// model server. It runs the deterministic operational brains (redaction,
// classification marking, arithmetic, summarising, audit and policy explanation,
// routing) and answers domain brains by ranked retrieval from the caller's memory.
// Every answer says that it comes from the builtin backend, not from a language model.
//
// It sits behind backend.Backend like any model server. What it may read is given to
// it per request, never looked up: For binds a Caller — a memory Retriever and an audit
// RecordReader already narrowed to what the requesting principal may see — so the
// backend itself decides nothing about access.
package builtin

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/sios-project/sios/backend"
	"github.com/sios-project/sios/brain"
	"github.com/sios-project/sios/oar"
)

// Notice opens every answer: the reader must never mistake retrieval for generation.
const Notice = "[sios builtin backend: deterministic processing and retrieval, not a language model]"

// EmbeddingModel is the model name the builtin embeddings report: feature hashing, lexical.
const EmbeddingModel = "sios-builtin-hashing"

// Passage is one memory a Retriever found.
type Passage struct {
	ID             string
	Subject        string
	Classification string
	Created        time.Time
	Text           string
	// From says where a passage that is not the tenant's own memory came from (a
	// release under a consent grant); empty for the tenant's own.
	From string
}

// Retriever searches the memory of the principal a request is made for. Implementations
// apply that principal's governance (tenant, clearance, policy) and audit the read.
type Retriever interface {
	Retrieve(ctx context.Context, question string, limit int) ([]Passage, error)
}

// RecordReader reads an entry of the node's audit log on behalf of the principal a
// request is made for; it refuses entries that principal may not read.
type RecordReader interface {
	Entry(ctx context.Context, index uint64) (*oar.Entry, error)
}

// Caller is what one request's principal may read.
type Caller struct {
	Memory  Retriever    // nil: retrieval finds nothing
	Records RecordReader // nil: records cannot be explained
}

// Backend is the builtin backend. Its zero value is not usable: set Brains.
type Backend struct {
	Brains *brain.Live
	// Policies is the number of Cedar policies the node decides with (the
	// policy-explainer brain states it).
	Policies func() int
}

// For returns the backend serving one request for the given caller.
func (b *Backend) For(c Caller) backend.Backend { return &bound{b: b, c: c} }

type bound struct {
	b *Backend
	c Caller
}

// Chat implements backend.Backend. req.Model is the brain id.
func (bb *bound) Chat(ctx context.Context, req backend.ChatRequest, onDelta func(backend.Delta) error) (*backend.ChatResponse, error) {
	b, ok := bb.b.Brains.Get(req.Model)
	if !ok {
		return nil, fmt.Errorf("builtin: no brain %q", req.Model)
	}
	prompt := ""
	for i := len(req.Messages) - 1; i >= 0; i-- {
		if req.Messages[i].Role == "user" {
			prompt = req.Messages[i].Content
			break
		}
	}
	answer := bb.answer(ctx, b, prompt)
	if b.Builtin == brain.BuiltinRetrieval || b.Builtin == brain.BuiltinNone {
		if found := bb.retrieve(ctx, prompt); found != "" {
			answer = found
		}
	}
	text := Notice + "\n" + answer
	if req.MaxTokens > 0 {
		text = truncateTokens(text, req.MaxTokens)
	}
	if onDelta != nil {
		for _, piece := range splitKeep(text) {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			if err := onDelta(backend.Delta{Content: piece}); err != nil {
				return nil, err
			}
		}
	}
	pt, ct := CountTokens(prompt), CountTokens(text)
	return &backend.ChatResponse{Model: "sios-builtin", Content: text, FinishReason: "stop",
		Usage: backend.Usage{PromptTokens: pt, CompletionTokens: ct, TotalTokens: pt + ct}, UsageEstimated: true}, nil
}

func (bb *bound) answer(ctx context.Context, b *brain.Brain, prompt string) string {
	switch b.Builtin {
	case brain.BuiltinRedact:
		return Redact(prompt)
	case brain.BuiltinClassify:
		lvl, why := SuggestClassification(prompt)
		return fmt.Sprintf("Suggested marking: %s\nReason: %s", lvl, why)
	case brain.BuiltinArithmetic:
		expr := extractExpression(prompt)
		v, err := EvalArithmetic(expr)
		if err != nil {
			return fmt.Sprintf("Could not evaluate %q: %v", expr, err)
		}
		return fmt.Sprintf("%s = %s", expr, FormatNumber(v))
	case brain.BuiltinSummarise:
		return summarise(prompt, 3)
	case brain.BuiltinAuditExplain:
		return bb.explainRecord(ctx, prompt)
	case brain.BuiltinPolicyExplain:
		n := 0
		if bb.b.Policies != nil {
			n = bb.b.Policies()
		}
		return fmt.Sprintf("This node decides with %d Cedar policies. Forbids always win over permits: no read up "+
			"(clearance below the brain's or data's classification), no flow down (data to a brain, backend or peer "+
			"accredited below its classification), no cross-tenant flow without consent. Run 'sios policy check' to "+
			"see the policies behind any decision.", n)
	case brain.BuiltinRoute:
		r, why := bb.b.Brains.Catalogue().Route(prompt)
		return fmt.Sprintf("Route: %s (%s)", r.ID, why)
	}
	return fmt.Sprintf("Brain %s (%s) has no model server configured, and retrieval found nothing: this node "+
		"holds no memory for the question yet. Configure a model backend (sios up --backend URL) for "+
		"generated answers.", b.ID, b.Title)
}

// retrieve answers from the caller's memory, quoting and citing what it found.
func (bb *bound) retrieve(ctx context.Context, question string) string {
	if bb.c.Memory == nil {
		return ""
	}
	res, err := bb.c.Memory.Retrieve(ctx, question, 3)
	if err != nil || len(res) == 0 {
		return ""
	}
	var sb strings.Builder
	sb.WriteString("From the tenant's memory (ranked retrieval; quoted, not generated):\n")
	for i, r := range res {
		text := r.Text
		if len(text) > 600 {
			text = text[:600] + "…"
		}
		from := ""
		if r.From != "" {
			from = ", " + r.From
		}
		fmt.Fprintf(&sb, "[%d] %s (subject %s, %s, %s%s): %q\n", i+1, r.ID, r.Subject, r.Classification, r.Created.Format(time.DateOnly), from, text)
	}
	return sb.String()
}

var recordIndex = regexp.MustCompile(`\d+`)

// explainRecord explains the audit record whose index the prompt names.
func (bb *bound) explainRecord(ctx context.Context, prompt string) string {
	m := recordIndex.FindString(prompt)
	if m == "" {
		return "Name the index of the audit record to explain, e.g. \"explain record 12\"."
	}
	idx, _ := strconv.ParseUint(m, 10, 64)
	if bb.c.Records == nil {
		return "The audit log cannot be read here."
	}
	e, err := bb.c.Records.Entry(ctx, idx)
	if err != nil {
		return fmt.Sprintf("Record %d cannot be explained: %v.", idx, err)
	}
	if e.Seal != nil {
		return fmt.Sprintf("Entry %d is seal %d: it signs (ML-DSA-65 and Ed25519) the Merkle root %s over records %d to %d.",
			idx, e.Seal.Seq, e.Seal.Root, e.Seal.First, e.Seal.First+e.Seal.Count-1)
	}
	rec := e.Record
	var sb strings.Builder
	fmt.Fprintf(&sb, "Record %d, at %s: %s did %s", idx, rec.Time, rec.Actor.ID, rec.Action)
	if rec.Resource != "" {
		fmt.Fprintf(&sb, " on %s", rec.Resource)
	}
	if rec.Tenant != "" {
		fmt.Fprintf(&sb, " in tenant %s", rec.Tenant)
	}
	sb.WriteString(".")
	if d := rec.Decision; d != nil {
		fmt.Fprintf(&sb, " Decision: %s", d.Effect)
		if len(d.Policies) > 0 {
			fmt.Fprintf(&sb, " by %s", strings.Join(d.Policies, ", "))
		}
		sb.WriteString(".")
	}
	// Inputs are named with their sizes, never their digests: a digest would let whoever
	// reads the explanation confirm a guessed text.
	for _, in := range rec.Inputs {
		fmt.Fprintf(&sb, " Input %s: %d bytes (its digest is in the record; the text is not).", in.Name, in.Size)
	}
	return sb.String()
}

// Embed implements backend.Backend with deterministic feature hashing: a bag of words
// hashed into 256 dimensions and normalised. It is lexical, not semantic, and says so
// in its model name (EmbeddingModel).
func (bb *bound) Embed(_ context.Context, _ string, input []string) ([][]float32, backend.Usage, error) {
	n := 0
	for _, s := range input {
		n += CountTokens(s)
	}
	return Embed(input), backend.Usage{PromptTokens: n, TotalTokens: n}, nil
}

// Embed is the builtin embedding of each text (see bound.Embed).
func Embed(input []string) [][]float32 {
	const dims = 256
	out := make([][]float32, len(input))
	for i, s := range input {
		v := make([]float32, dims)
		for _, w := range words(s) {
			h := sha256.Sum256([]byte(w))
			j := binary.BigEndian.Uint32(h[:4]) % dims
			if h[4]&1 == 0 {
				v[j]++
			} else {
				v[j]--
			}
		}
		var norm float64
		for _, x := range v {
			norm += float64(x * x)
		}
		if norm > 0 {
			inv := float32(1 / math.Sqrt(norm))
			for k := range v {
				v[k] *= inv
			}
		}
		out[i] = v
	}
	return out
}

var redactions = []struct {
	label string
	re    *regexp.Regexp
}{
	{"EMAIL", regexp.MustCompile(`[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}`)},
	{"CARD", regexp.MustCompile(`\b(?:\d[ -]?){13,19}\b`)},
	{"NHS-NUMBER", regexp.MustCompile(`\b\d{3}[ -]?\d{3}[ -]?\d{4}\b`)},
	{"NI-NUMBER", regexp.MustCompile(`\b[A-Z]{2}\s?\d{2}\s?\d{2}\s?\d{2}\s?[A-D]\b`)},
	{"PHONE", regexp.MustCompile(`(?:\+44\s?|\b0)\d{2,4}[\s-]?\d{3,4}[\s-]?\d{3,4}\b`)},
	{"POSTCODE", regexp.MustCompile(`\b[A-Z]{1,2}\d[A-Z\d]?\s?\d[A-Z]{2}\b`)},
	{"IP", regexp.MustCompile(`\b(?:\d{1,3}\.){3}\d{1,3}\b`)},
}

// Redact masks personal identifiers: e-mail addresses, card, NHS and National
// Insurance numbers, UK phone numbers, postcodes and IP addresses.
func Redact(s string) string {
	for _, r := range redactions {
		s = r.re.ReplaceAllString(s, "["+r.label+"]")
	}
	return s
}

var markings = []struct {
	level string
	words []string
}{
	{"TOP-SECRET", []string{"top secret", "top-secret", "strap", "codeword", "sigint", "humint"}},
	{"SECRET", []string{"secret", "classified", "weapons", "operational plan", "intelligence"}},
	{"OFFICIAL-SENSITIVE", []string{"official-sensitive", "patient", "nhs number", "diagnosis", "personal data",
		"salary", "disciplinary", "commercial in confidence", "legal privilege", "date of birth"}},
}

// SuggestClassification proposes a UK Government Security Classification marking from
// markers and keywords in the text. It advises; the originator decides.
func SuggestClassification(s string) (string, string) {
	low := strings.ToLower(s)
	for _, m := range markings {
		for _, w := range m.words {
			if strings.Contains(low, w) {
				return m.level, fmt.Sprintf("the text mentions %q", w)
			}
		}
	}
	if Redact(s) != s {
		return "OFFICIAL-SENSITIVE", "the text holds personal identifiers"
	}
	return "OFFICIAL", "no sensitive markers or identifiers found"
}

var exprChars = regexp.MustCompile(`[-+*/%^().\d\s,_]+`)

// extractExpression takes the longest run of arithmetic characters in a prompt.
func extractExpression(s string) string {
	best := ""
	for _, m := range exprChars.FindAllString(s, -1) {
		if t := strings.TrimSpace(m); len(t) > len(best) && strings.ContainsAny(t, "0123456789") {
			best = t
		}
	}
	return best
}

var sentences = regexp.MustCompile(`[^.!?]+[.!?]*`)

// summarise keeps the first n sentences (extractive, deterministic).
func summarise(s string, n int) string {
	var out []string
	for _, sent := range sentences.FindAllString(s, -1) {
		if t := strings.TrimSpace(sent); t != "" {
			out = append(out, t)
		}
		if len(out) == n {
			break
		}
	}
	if len(out) == 0 {
		return "Nothing to summarise."
	}
	return "Summary (first sentences): " + strings.Join(out, " ")
}

func words(s string) []string {
	return strings.FieldsFunc(strings.ToLower(s), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
}

// CountTokens estimates tokens as about four bytes each, the usual rule of thumb.
func CountTokens(s string) int { return (len(s) + 3) / 4 }

func truncateTokens(s string, max int) string {
	if CountTokens(s) <= max {
		return s
	}
	cut := max * 4
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

// splitKeep splits text into word-sized pieces that concatenate back to it.
func splitKeep(s string) []string {
	var out []string
	start := 0
	for i := 1; i < len(s); i++ {
		if s[i] == ' ' || s[i] == '\n' {
			out = append(out, s[start:i])
			start = i
		}
	}
	return append(out, s[start:])
}
