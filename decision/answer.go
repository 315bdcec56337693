package decision

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/big"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sios-project/sios/jcs"
	"github.com/sios-project/sios/oar"
)

// A member's model is asked for structured output: a JSON object with exactly the
// members choice, confidence and rationale, whose choice is one of the choices the
// member may make (Request.Choices). ResponseFormat is the OpenAI-compatible
// response_format that asks for it; Prompt says the same in words, for servers that
// ignore response_format; ParseAnswer reads the answer, and anything that is not such
// an object becomes an abstention that says why.

// ResponseFormat returns the response_format member of a chat completion request
// that constrains the answer to a ballot over choices:
//
//	{"type":"json_schema","json_schema":{"name":"ballot","strict":true,"schema":{…}}}
//
// with a schema whose choice is an enum of choices, confidence a number from 0 to 1
// and rationale a string, all three required and no others allowed.
func ResponseFormat(choices []string) (json.RawMessage, error) {
	if err := checkChoices(choices); err != nil {
		return nil, err
	}
	type prop map[string]any
	schema := map[string]any{
		"type": "json_schema",
		"json_schema": map[string]any{
			"name":   "ballot",
			"strict": true,
			"schema": map[string]any{
				"type": "object",
				"properties": map[string]prop{
					"choice":     {"type": "string", "enum": choices},
					"confidence": {"type": "number", "minimum": 0, "maximum": 1},
					"rationale":  {"type": "string"},
				},
				"required":             []string{"choice", "confidence", "rationale"},
				"additionalProperties": false,
			},
		},
	}
	return jcs.Marshal(schema)
}

// Prompt is the question followed by the instructions for answering it as a ballot
// over choices: what the model is sent as the user message, under its brain's system
// prompt.
func Prompt(question string, choices []string) string {
	quoted := make([]string, len(choices))
	var vetoes []string
	for i, c := range choices {
		q, _ := json.Marshal(c)
		quoted[i] = string(q)
		if strings.HasPrefix(c, VetoPrefix) {
			vetoes = append(vetoes, string(q))
		}
	}
	var b strings.Builder
	b.WriteString(strings.TrimSpace(question))
	b.WriteString("\n\nAnswer with one JSON object and nothing else, with exactly these members:\n")
	fmt.Fprintf(&b, "- \"choice\": one of %s. Choose %q if you cannot decide.\n", strings.Join(quoted, ", "), Abstain)
	if len(vetoes) > 0 {
		fmt.Fprintf(&b, "  %s blocks that option whatever the other members choose: use it only to prevent an option you judge unacceptable.\n", strings.Join(vetoes, ", "))
	}
	b.WriteString("- \"confidence\": a number from 0 to 1, how sure you are of your choice.\n")
	fmt.Fprintf(&b, "- \"rationale\": why, in a few sentences (at most %d bytes).\n", MaxRationaleLen)
	return b.String()
}

// Answer is a model's answer read as a ballot's content.
type Answer struct {
	Choice     string
	Confidence Permille
	// Rationale is the model's rationale (cut to MaxRationaleLen bytes), or, for an
	// answer that did not parse or validate, why it became an abstention.
	Rationale string
	// Abstention is why Choice is Abstain; "" when it is not.
	Abstention string
}

// ParseAnswer reads a model's answer over choices. It accepts one JSON object with
// exactly the members choice (a string among choices), confidence (a number from 0
// to 1) and rationale (a string), optionally inside one Markdown code fence;
// confidence is rounded half up to thousandths. Anything else is an abstention: AbstainUnparsable
// when the answer is not one JSON object, AbstainInvalid when its members or values are
// wrong, with a Rationale saying what was wrong. A model that chose Abstain abstains
// with AbstainChosen and confidence 0.
func ParseAnswer(content string, choices []string) Answer {
	if len(content) > MaxAnswerLen {
		return abstain(AbstainUnparsable, "the answer is %d bytes, more than the %d read (MaxAnswerLen)", len(content), MaxAnswerLen)
	}
	body := unfence(strings.TrimSpace(content))
	if _, err := jcs.Canonicalize([]byte(body)); err != nil || !strings.HasPrefix(body, "{") {
		return abstain(AbstainUnparsable, "the answer is not one JSON object (duplicate members, invalid UTF-8 and text around it are refused)")
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal([]byte(body), &members); err != nil {
		return abstain(AbstainUnparsable, "the answer is not one JSON object")
	}
	for _, k := range slices.Sorted(maps.Keys(members)) {
		if k != "choice" && k != "confidence" && k != "rationale" {
			return abstain(AbstainInvalid, "the answer has the member %q; only choice, confidence and rationale are allowed", short(k))
		}
	}
	var a Answer
	var conf float64
	for _, f := range []struct {
		name string
		into any
		want string
	}{{"choice", &a.Choice, "a string"}, {"confidence", &conf, "a number"}, {"rationale", &a.Rationale, "a string"}} {
		raw, ok := members[f.name]
		if !ok {
			return abstain(AbstainInvalid, "the answer has no %s", f.name)
		}
		if err := json.Unmarshal(raw, f.into); err != nil || string(raw) == "null" {
			return abstain(AbstainInvalid, "the answer's %s is not %s", f.name, f.want)
		}
	}
	if !slices.Contains(choices, a.Choice) {
		return abstain(AbstainInvalid, "the answer's choice %q is not one of the choices offered", short(a.Choice))
	}
	if !(conf >= 0 && conf <= 1) {
		return abstain(AbstainInvalid, "the answer's confidence %v is not from 0 to 1", conf)
	}
	a.Confidence = permille(members["confidence"])
	a.Rationale = cut(a.Rationale, MaxRationaleLen)
	if a.Choice == Abstain {
		a.Confidence, a.Abstention = 0, AbstainChosen
	}
	return a
}

// permille is a JSON number from 0 to 1 in thousandths, rounded half up, computed on
// the decimal digits of its canonical (RFC 8785) spelling rather than in binary
// floating point, so that 0.0015 is 2 as a reader expects. The canonical spelling
// bounds the exponent, and so the work.
func permille(raw json.RawMessage) Permille {
	c, err := jcs.Canonicalize(raw)
	r, ok := new(big.Rat).SetString(string(c))
	if err != nil || !ok {
		return 0
	}
	r.Mul(r, big.NewRat(1000, 1))
	r.Add(r, big.NewRat(1, 2))
	n := new(big.Int).Quo(r.Num(), r.Denom()) // floor, as r is positive
	return Permille(min(n.Int64(), int64(MaxPermille)))
}

// FailedAnswer is the abstention of a member whose brain gave no answer; why is
// recorded as its rationale.
func FailedAnswer(why string) Answer {
	return Answer{Choice: Abstain, Abstention: AbstainFailed, Rationale: cut(why, MaxRationaleLen)}
}

// Ballot is the unsigned ballot that records a as the answer of brain on node, served
// by model, to req; SealBallot signs it.
func (a Answer) Ballot(req *Request, node, brain, model string, now time.Time) Ballot {
	return Ballot{Decision: req.Hash(), Node: node, Brain: brain, Model: model, Choice: a.Choice,
		Confidence: a.Confidence, Abstention: a.Abstention, RationaleDigest: RationaleDigest(a.Rationale), Time: oar.FormatTime(now)}
}

func abstain(code, format string, args ...any) Answer {
	return Answer{Choice: Abstain, Abstention: code, Rationale: fmt.Sprintf(format, args...)}
}

// unfence returns the inside of one Markdown code fence around s (```json … ```), or s.
func unfence(s string) string {
	rest, ok := strings.CutPrefix(s, "```")
	if !ok {
		return s
	}
	_, inner, ok := strings.Cut(rest, "\n") // drops the info string ("json")
	if !ok {
		return s
	}
	inner, ok = strings.CutSuffix(strings.TrimSpace(inner), "```")
	if !ok {
		return s
	}
	return strings.TrimSpace(inner)
}

// cut shortens s to at most max bytes at a character boundary, making it valid UTF-8.
func cut(s string, max int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= max {
		return s
	}
	i := max
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i]
}

// checkChoices requires at least two distinct, non-empty choices.
func checkChoices(choices []string) error {
	if len(choices) < 2 {
		return errors.New("decision: a ballot needs at least two choices")
	}
	for i, c := range choices {
		if c == "" || !utf8.ValidString(c) {
			return fmt.Errorf("decision: choice %d is empty or not UTF-8", i)
		}
		if slices.Contains(choices[:i], c) {
			return fmt.Errorf("decision: choice %q is offered twice", short(c))
		}
	}
	return nil
}
