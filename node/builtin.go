package node

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/sios-project/sios/backend"
	"github.com/sios-project/sios/brain"
	"github.com/sios-project/sios/oar"
	"github.com/sios-project/sios/policy"
)

// principalKey carries the invoking principal to the builtin backend, which answers
// from that principal's tenant memory at its clearance.
type principalKey struct{}

// Builtin is the offline backend that makes a fresh node useful with no model server.
// It runs the deterministic operational brains (redaction, classification marking,
// arithmetic, summarising, audit and policy explanation, routing) and answers domain
// brains by retrieval. Every answer says that it comes from the builtin backend, not
// from a language model.
type Builtin struct {
	node *Node
}

const builtinNotice = "[sios builtin backend: deterministic processing and retrieval, not a language model]"

// Chat implements backend.Backend. req.Model is the brain id.
func (bi *Builtin) Chat(ctx context.Context, req backend.ChatRequest, onDelta func(backend.Delta) error) (*backend.ChatResponse, error) {
	b, ok := bi.node.brains.Get(req.Model)
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
	answer := bi.answer(ctx, b, prompt)
	if b.Builtin == brain.BuiltinRetrieval || b.Builtin == brain.BuiltinNone {
		if p, ok := ctx.Value(principalKey{}).(*policy.Principal); ok {
			if found := bi.node.retrieve(ctx, p, prompt); found != "" {
				answer = found
			}
		}
	}
	text := builtinNotice + "\n" + answer
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
	pt, ct := countTokens(prompt), countTokens(text)
	return &backend.ChatResponse{Model: "sios-builtin", Content: text, FinishReason: "stop",
		Usage: backend.Usage{PromptTokens: pt, CompletionTokens: ct, TotalTokens: pt + ct}, UsageEstimated: true}, nil
}

func (bi *Builtin) answer(ctx context.Context, b *brain.Brain, prompt string) string {
	switch b.Builtin {
	case brain.BuiltinRedact:
		return Redact(prompt)
	case brain.BuiltinClassify:
		lvl, why := suggestClassification(prompt)
		return fmt.Sprintf("Suggested marking: %s\nReason: %s", lvl, why)
	case brain.BuiltinArithmetic:
		expr := extractExpression(prompt)
		v, err := evalArithmetic(expr)
		if err != nil {
			return fmt.Sprintf("Could not evaluate %q: %v", expr, err)
		}
		return fmt.Sprintf("%s = %s", expr, formatNumber(v))
	case brain.BuiltinSummarise:
		return summarise(prompt, 3)
	case brain.BuiltinAuditExplain:
		return bi.explainRecord(ctx, prompt)
	case brain.BuiltinPolicyExplain:
		return fmt.Sprintf("This node decides with %d Cedar policies. Forbids always win over permits: no read up "+
			"(clearance below the brain's or data's classification), no flow down (data to a brain, backend or peer "+
			"accredited below its classification), no cross-tenant flow without consent. Run 'sios policy check' to "+
			"see the policies behind any decision.", bi.node.policy.Len())
	case brain.BuiltinRoute:
		r, why := bi.node.brains.Route(prompt)
		return fmt.Sprintf("Route: %s (%s)", r.ID, why)
	}
	return fmt.Sprintf("Brain %s (%s) has no model server configured, and retrieval found nothing: this node "+
		"holds no memory for the question yet. Configure a model backend (sios up --backend URL) for "+
		"generated answers.", b.ID, b.Title)
}

// explainRecord explains the audit record whose index the prompt names.
func (bi *Builtin) explainRecord(ctx context.Context, prompt string) string {
	m := regexp.MustCompile(`\d+`).FindString(prompt)
	if m == "" {
		return "Name the index of the audit record to explain, e.g. \"explain record 12\"."
	}
	idx, _ := strconv.ParseUint(m, 10, 64)
	r, err := bi.node.reader()
	if err != nil {
		return "The audit log cannot be read: " + err.Error()
	}
	entry, err := r.Entry(ctx, idx)
	if err != nil {
		return fmt.Sprintf("Record %d is not in the checkpointed log yet (%v).", idx, err)
	}
	e, err := oar.Parse(entry)
	if err != nil {
		return fmt.Sprintf("Entry %d does not parse: %v", idx, err)
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
	for _, in := range rec.Inputs {
		fmt.Fprintf(&sb, " Input %s has SHA-256 %s (the text itself is not in the log).", in.Name, in.SHA256)
	}
	return sb.String()
}

// Embed implements backend.Backend with deterministic feature hashing: a bag of words
// hashed into 256 dimensions and normalised. It is lexical, not semantic, and says so
// in the model name the API reports.
func (bi *Builtin) Embed(_ context.Context, _ string, input []string) ([][]float32, error) {
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
	return out, nil
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

// suggestClassification proposes a UK Government Security Classification marking from
// markers and keywords in the text. It advises; the originator decides.
func suggestClassification(s string) (string, string) {
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

// summarise keeps the first n sentences (extractive, deterministic).
func summarise(s string, n int) string {
	var out []string
	for _, sent := range regexp.MustCompile(`[^.!?]+[.!?]*`).FindAllString(s, -1) {
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

// countTokens estimates tokens as about four bytes each, the usual rule of thumb.
func countTokens(s string) int { return (len(s) + 3) / 4 }

func truncateTokens(s string, max int) string {
	if countTokens(s) <= max {
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
