package node

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/sios-project/sios/backend"
	"github.com/sios-project/sios/brain"
	"github.com/sios-project/sios/memory"
	"github.com/sios-project/sios/oar"
	"github.com/sios-project/sios/policy"
)

// A tool is something a model may ask the node to do inside the perimeter. It runs
// only if the brain's allowlist names it and policy permits it; every call, run or
// refused, is audited.
type tool struct {
	def backend.FunctionDef
	run func(ctx context.Context, n *Node, p *policy.Principal, args json.RawMessage) (string, error)
}

// tools are the node's tools by name. Only append: audit records name them.
func tools() map[string]tool {
	text := json.RawMessage(`{"type":"object","properties":{"text":{"type":"string"}},"required":["text"]}`)
	textArg := func(args json.RawMessage) (string, error) {
		var a struct {
			Text string `json:"text"`
		}
		if err := json.Unmarshal(args, &a); err != nil {
			return "", fmt.Errorf("arguments must be {\"text\": \"...\"}")
		}
		return a.Text, nil
	}
	return map[string]tool{
		"redact": {
			def: backend.FunctionDef{Name: "redact", Description: "Mask personal identifiers (e-mail, phone, NHS, NI and card numbers, postcodes, IP addresses) in a text.", Parameters: text},
			run: func(_ context.Context, _ *Node, _ *policy.Principal, args json.RawMessage) (string, error) {
				s, err := textArg(args)
				return Redact(s), err
			},
		},
		"classify": {
			def: backend.FunctionDef{Name: "classify", Description: "Suggest a UK Government Security Classification marking for a text.", Parameters: text},
			run: func(_ context.Context, _ *Node, _ *policy.Principal, args json.RawMessage) (string, error) {
				s, err := textArg(args)
				lvl, why := suggestClassification(s)
				return lvl + ": " + why, err
			},
		},
		"clock": {
			def: backend.FunctionDef{Name: "clock", Description: "The current date and time (UTC, RFC 3339).",
				Parameters: json.RawMessage(`{"type":"object","properties":{}}`)},
			run: func(context.Context, *Node, *policy.Principal, json.RawMessage) (string, error) {
				return time.Now().UTC().Format(time.RFC3339), nil
			},
		},
		"memory.search": {
			def: backend.FunctionDef{Name: "memory.search", Description: "Search the tenant's memory (ranked retrieval); returns matching memories with their ids to cite.",
				Parameters: json.RawMessage(`{"type":"object","properties":{"query":{"type":"string"},"subject":{"type":"string"}},"required":["query"]}`)},
			run: func(ctx context.Context, n *Node, p *policy.Principal, args json.RawMessage) (string, error) {
				var a struct {
					Query   string `json:"query"`
					Subject string `json:"subject"`
				}
				if err := json.Unmarshal(args, &a); err != nil {
					return "", fmt.Errorf("arguments must be {\"query\": \"...\"}")
				}
				res, _, err := n.memory.Search(ctx, actorOf(p), &oar.Decision{Effect: "allow", Policies: []string{"permit-brain-tools"}},
					memory.Query{Tenant: p.Tenant, Subject: a.Subject, Clearance: p.Clearance, Text: a.Query, Limit: 5})
				if err != nil {
					return "", err
				}
				b, err := json.Marshal(res)
				return string(b), err
			},
		},
		"calculator": {
			def: backend.FunctionDef{Name: "calculator", Description: "Evaluate an arithmetic expression exactly (+ - * / ^ % and parentheses).",
				Parameters: json.RawMessage(`{"type":"object","properties":{"expression":{"type":"string"}},"required":["expression"]}`)},
			run: func(_ context.Context, _ *Node, _ *policy.Principal, args json.RawMessage) (string, error) {
				var a struct {
					Expression string `json:"expression"`
				}
				if err := json.Unmarshal(args, &a); err != nil {
					return "", fmt.Errorf("arguments must be {\"expression\": \"...\"}")
				}
				v, err := evalArithmetic(a.Expression)
				if err != nil {
					return "", err
				}
				return formatNumber(v), nil
			},
		},
	}
}

// toolDefs are the definitions offered to the model: the brain's allowlisted tools the
// node implements.
func (n *Node) toolDefs(b *brain.Brain) []backend.Tool {
	all := tools()
	var out []backend.Tool
	for _, name := range b.Tools {
		if t, ok := all[name]; ok {
			out = append(out, backend.Tool{Type: "function", Function: t.def})
		}
	}
	return out
}

// toolOutcome is what the completion record says about one tool call.
type toolOutcome struct {
	Name    string `json:"name"`
	Allowed bool   `json:"allowed"`
	Error   string `json:"error,omitempty"`
}

// runTool applies the perimeter to one tool call and audits it.
func (n *Node) runTool(ctx context.Context, p *policy.Principal, b *brain.Brain, tc backend.ToolCall, admissionHash string) (string, toolOutcome) {
	name := tc.Function.Name
	out := toolOutcome{Name: name}
	t, known := tools()[name]
	listed := slices.Contains(b.Tools, name)
	d := n.policy.Decide(policy.Request{
		Principal: *p, Action: policy.ActionTool,
		Resource: policy.Resource{Type: policy.ResourceTool, ID: name},
		Context:  policy.Context{Tenant: p.Tenant, ToolAllowed: listed && known},
	})
	policies := d.Reasons
	if !listed {
		policies = append([]string{"brain-tool-allowlist"}, policies...)
	}
	rec := &oar.Record{
		Tenant: p.Tenant, Actor: oar.Actor{ID: p.ID, Clearance: p.Clearance.String()},
		Action: "tool.call", Resource: "tool/" + name,
		Decision: &oar.Decision{Effect: d.Effect(), Policies: policies},
		Inputs:   []oar.Digest{oar.DigestOf("arguments", []byte(tc.Function.Arguments))},
		Links:    []oar.Link{{Rel: "admission", RecordHash: admissionHash}},
		Detail:   mustJSON(map[string]string{"brain": b.ID, "call_id": tc.ID}),
	}
	var result string
	switch {
	case !listed || !known || !d.Allow:
		out.Error = "not permitted"
		result = fmt.Sprintf("error: tool %q is not permitted for brain %s; it was not run", name, b.ID)
	default:
		out.Allowed = true
		r, err := t.run(ctx, n, p, json.RawMessage(tc.Function.Arguments))
		if err != nil {
			out.Error = err.Error()
			result = "error: " + err.Error()
		} else {
			result = r
		}
		rec.Outputs = []oar.Digest{oar.DigestOf("result", []byte(result))}
	}
	if _, _, err := n.ledger.Append(context.WithoutCancel(ctx), rec); err != nil {
		n.log.Error("audit tool call", "tool", name, "err", err)
		return "error: the audit ledger could not record this tool call; it was not run", toolOutcome{Name: name, Error: "audit unavailable"}
	}
	return result, out
}

// conversation is the outcome of a brain's exchange with its backend.
type conversation struct {
	content   string
	finish    string
	usage     backend.Usage
	toolCalls []toolOutcome
	backend   string
	err       error
}

// converse runs the model, executing the tool calls it makes under the perimeter,
// until it answers, the rounds run out, or the token budget is spent.
func (n *Node) converse(ctx context.Context, p *policy.Principal, b *brain.Brain, be backend.Backend,
	req backend.ChatRequest, onDelta func(backend.Delta) error, admissionHash string) conversation {
	var cv conversation
	budget := req.MaxTokens
	for round := 0; ; round++ {
		resp, err := be.Chat(ctx, req, onDelta)
		if err != nil {
			cv.err = err
			return cv
		}
		cv.usage.PromptTokens += resp.Usage.PromptTokens
		cv.usage.CompletionTokens += resp.Usage.CompletionTokens
		cv.usage.TotalTokens += resp.Usage.TotalTokens
		cv.content, cv.finish = resp.Content, resp.FinishReason
		if len(resp.ToolCalls) == 0 {
			return cv
		}
		if round == maxToolRounds || (budget > 0 && cv.usage.CompletionTokens >= budget) {
			cv.finish = "length"
			if cv.content == "" {
				cv.content = fmt.Sprintf("[stopped: brain %s reached its limit of %d tool rounds or %d tokens]", b.ID, maxToolRounds, budget)
			}
			return cv
		}
		req.Messages = append(req.Messages, backend.Message{Role: "assistant", Content: resp.Content, ToolCalls: resp.ToolCalls})
		for _, tc := range resp.ToolCalls {
			result, outcome := n.runTool(ctx, p, b, tc, admissionHash)
			cv.toolCalls = append(cv.toolCalls, outcome)
			req.Messages = append(req.Messages, backend.Message{Role: "tool", ToolCallID: tc.ID, Content: result})
		}
		if budget > 0 {
			req.MaxTokens = max(1, budget-cv.usage.CompletionTokens)
		}
	}
}

func formatNumber(v float64) string {
	s := fmt.Sprintf("%.12g", v)
	if strings.Contains(s, "e") {
		return fmt.Sprintf("%g", v)
	}
	return s
}
