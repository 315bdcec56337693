package invoke

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/sios-project/sios/backend"
	"github.com/sios-project/sios/backend/builtin"
	"github.com/sios-project/sios/brain"
	"github.com/sios-project/sios/oar"
	"github.com/sios-project/sios/policy"
)

// A tool is something a model may ask the node to do inside the perimeter. It runs
// only if the brain's allowlist names it and policy permits it; every call, run or
// refused, is audited.
type tool struct {
	def backend.FunctionDef
	run func(ctx context.Context, p *Pipeline, inv *Invocation, args json.RawMessage) (string, error)
}

var textParams = json.RawMessage(`{"type":"object","properties":{"text":{"type":"string"}},"required":["text"]}`)

func textArg(args json.RawMessage) (string, error) {
	var a struct {
		Text string `json:"text"`
	}
	if err := json.Unmarshal(args, &a); err != nil {
		return "", fmt.Errorf("arguments must be {\"text\": \"...\"}")
	}
	return a.Text, nil
}

// tools are the node's tools by name. Only append: audit records name them.
var tools = map[string]tool{
	"redact": {
		def: backend.FunctionDef{Name: "redact", Description: "Mask personal identifiers (e-mail, phone, NHS, NI and card numbers, postcodes, IP addresses) in a text.", Parameters: textParams},
		run: func(_ context.Context, _ *Pipeline, _ *Invocation, args json.RawMessage) (string, error) {
			s, err := textArg(args)
			return builtin.Redact(s), err
		},
	},
	"classify": {
		def: backend.FunctionDef{Name: "classify", Description: "Suggest a UK Government Security Classification marking for a text.", Parameters: textParams},
		run: func(_ context.Context, _ *Pipeline, _ *Invocation, args json.RawMessage) (string, error) {
			s, err := textArg(args)
			lvl, why := builtin.SuggestClassification(s)
			return lvl + ": " + why, err
		},
	},
	"clock": {
		def: backend.FunctionDef{Name: "clock", Description: "The current date and time (UTC, RFC 3339).",
			Parameters: json.RawMessage(`{"type":"object","properties":{}}`)},
		run: func(context.Context, *Pipeline, *Invocation, json.RawMessage) (string, error) {
			return time.Now().UTC().Format(time.RFC3339), nil
		},
	},
	"memory.search": {
		def: backend.FunctionDef{Name: "memory.search", Description: "Search the tenant's memory (ranked retrieval); returns matching memories with their ids to cite.",
			Parameters: json.RawMessage(`{"type":"object","properties":{"query":{"type":"string"},"subject":{"type":"string"}},"required":["query"]}`)},
		run: func(ctx context.Context, p *Pipeline, inv *Invocation, args json.RawMessage) (string, error) {
			var a struct {
				Query   string `json:"query"`
				Subject string `json:"subject"`
			}
			if err := json.Unmarshal(args, &a); err != nil {
				return "", fmt.Errorf("arguments must be {\"query\": \"...\"}")
			}
			res, err := p.searchForTool(ctx, inv, a.Subject, a.Query)
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
		run: func(_ context.Context, _ *Pipeline, _ *Invocation, args json.RawMessage) (string, error) {
			var a struct {
				Expression string `json:"expression"`
			}
			if err := json.Unmarshal(args, &a); err != nil {
				return "", fmt.Errorf("arguments must be {\"expression\": \"...\"}")
			}
			v, err := builtin.EvalArithmetic(a.Expression)
			if err != nil {
				return "", err
			}
			return builtin.FormatNumber(v), nil
		},
	},
}

// toolDefs are the definitions offered to the model: the brain's allowlisted tools the
// node implements.
func toolDefs(b *brain.Brain) []backend.Tool {
	var out []backend.Tool
	for _, name := range b.Tools {
		if t, ok := tools[name]; ok {
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

// runTool applies the perimeter to one tool call and audits it. The tool runs only
// after its record is durable; an error means the record could not be written, and the
// request must not go on.
func (p *Pipeline) runTool(ctx context.Context, inv *Invocation, tc backend.ToolCall) (string, toolOutcome, error) {
	pr, b := inv.Principal, inv.brain
	name := tc.Function.Name
	// The model chose the name and id: they are bounded before they go into records.
	shown := oar.Bounded(name, oar.MaxOutsideValue)
	out := toolOutcome{Name: shown}
	t, known := tools[name]
	listed := slices.Contains(b.Tools, name)
	d := p.cfg.Policy.Decide(policy.Request{
		Principal: *pr, Action: policy.ActionTool,
		Resource: policy.Resource{Type: policy.ResourceTool, ID: name},
		// The tool's result goes back to the brain's backend: the request's data and
		// where it flows, as for the invocation itself.
		Context: policy.Context{Tenant: pr.Tenant, ToolAllowed: listed && known,
			DataClassification: inv.data, TargetAccreditation: p.flowsTo(inv)},
	})
	policies := d.Reasons
	if !listed {
		policies = append([]string{"brain-tool-allowlist"}, policies...)
	}
	rec := inv.record(oar.ActionToolCall)
	rec.Resource = "tool/" + shown
	rec.Decision = &oar.Decision{Effect: d.Effect(), Policies: policies}
	rec.Inputs = []oar.Digest{oar.DigestOf("arguments", []byte(tc.Function.Arguments))}
	rec.Links = []oar.Link{{Rel: "admission", RecordHash: inv.Record}}
	rec.Detail = mustJSON(map[string]string{"brain": b.ID, "call_id": oar.Bounded(tc.ID, oar.MaxOutsideValue)})
	if !listed || !known || !d.Allow {
		out.Error = "not permitted"
		if err := p.writeNow(ctx, rec); err != nil {
			p.cfg.Log.Error("audit tool call", "tool", shown, "err", err)
			return "", out, errAudit()
		}
		return fmt.Sprintf("error: tool %q is not permitted for brain %s; it was not run", shown, b.ID), out, nil
	}
	// The call is recorded before it runs; its result's digest follows in a second
	// record linked to the first.
	h, err := p.prepare(rec)
	if err == nil {
		err = p.writeNow(ctx, rec)
	}
	if err != nil {
		p.cfg.Log.Error("audit tool call", "tool", shown, "err", err)
		return "", out, errAudit()
	}
	out.Allowed = true
	result, rerr := t.run(ctx, p, inv, json.RawMessage(tc.Function.Arguments))
	var ie *Error
	if errors.As(rerr, &ie) && ie.Code == CodeAuditFailed {
		return "", out, ie
	}
	if rerr != nil {
		out.Error = oar.Bounded(rerr.Error(), oar.MaxOutsideValue)
		result = "error: " + rerr.Error()
	}
	done := inv.record(oar.ActionToolResult)
	done.Resource = rec.Resource
	done.Outputs = []oar.Digest{oar.DigestOf("result", []byte(result))}
	done.Links = []oar.Link{{Rel: "call", RecordHash: h}}
	if out.Error != "" {
		done.Detail = mustJSON(map[string]string{"error": out.Error})
	}
	if err := p.writeNow(ctx, done); err != nil {
		p.cfg.Log.Error("audit tool result", "tool", shown, "err", err)
		return "", out, errAudit()
	}
	return result, out, nil
}
