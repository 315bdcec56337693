package invoke

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sios-project/sios/backend"
	"github.com/sios-project/sios/backend/builtin"
	"github.com/sios-project/sios/brain"
	"github.com/sios-project/sios/egress"
	"github.com/sios-project/sios/oar"
)

// The execute stage for a local brain: its backend (a model server, or the builtin
// one) runs the conversation, and the tool calls the model makes are executed inside
// the perimeter (tools.go).

// conversation is the outcome of a brain's exchange with its backend.
type conversation struct {
	content   string
	finish    string
	usage     backend.Usage
	toolCalls []toolOutcome
	backend   string
	err       error
}

func (p *Pipeline) execute(ctx context.Context, inv *Invocation, sink Sink) error {
	b := inv.brain
	be, beName, err := p.backendFor(inv, b)
	if err != nil {
		p.cfg.Log.Error("backend", "brain", b.ID, "err", err)
		return p.complete(ctx, inv, nil, sink, p.withReceipt(inv, errorf(CodeBackendMisconfigured,
			"brain %s's backend is misconfigured; see the node's log", b.ID)))
	}
	maxTokens := b.MaxTokens
	if inv.MaxTokens != nil && *inv.MaxTokens > 0 && (maxTokens == 0 || *inv.MaxTokens < maxTokens) {
		maxTokens = *inv.MaxTokens
	}
	timeout := time.Duration(b.Timeout)
	if timeout <= 0 {
		timeout = defaultTimeout
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	breq := backend.ChatRequest{Model: b.Model, Messages: toBackend(b, inv.Messages), MaxTokens: maxTokens,
		Temperature: inv.Temperature, Tools: toolDefs(b)}
	switch {
	case beName == brain.BackendBuiltin:
		breq.Model = b.ID
	case breq.Model == "":
		breq.Model = p.cfg.DefaultModel
	}
	if breq.Model == "" {
		return p.complete(ctx, inv, nil, sink, p.withReceipt(inv, errorf(CodeNoModel,
			"brain %s names no model for its backend and the node has no default model (config \"model\" or sios up --model)", b.ID)))
	}
	started := false
	start := func() error {
		if started {
			return nil
		}
		started = true
		return sink.Start(b.ID, inv.receipt)
	}
	var onDelta func(backend.Delta) error
	if inv.Stream {
		onDelta = func(dl backend.Delta) error {
			if err := start(); err != nil {
				return err
			}
			return sink.Delta(dl.Content)
		}
	}
	cv := p.converse(cctx, inv, be, breq, onDelta)
	cv.backend = beName
	if cv.err != nil {
		e := backendError(b, beName, timeout, cv.err)
		if !started {
			p.withReceipt(inv, e)
		}
		return p.complete(ctx, inv, &cv, sink, e)
	}
	if err := start(); err != nil {
		return err
	}
	return p.complete(ctx, inv, &cv, sink, nil)
}

// withReceipt attaches the admission's receipt to a failure after admission.
func (p *Pipeline) withReceipt(inv *Invocation, e *Error) *Error {
	e.Receipt = inv.receipt
	return e
}

// isBuiltin says whether the builtin backend serves b.
func (p *Pipeline) isBuiltin(b *brain.Brain) bool {
	return b.Backend == brain.BackendBuiltin || (b.Backend == brain.BackendDefault && p.cfg.DefaultBackend == brain.BackendBuiltin)
}

// backendFor returns the backend serving b for this invocation: the builtin one, bound
// to what the invocation's principal may read, or the client of a model server (every
// network backend dials through the egress guard).
func (p *Pipeline) backendFor(inv *Invocation, b *brain.Brain) (backend.Backend, string, error) {
	if p.isBuiltin(b) {
		return p.cfg.Builtin.For(builtin.Caller{Memory: p.retriever(inv), Records: p.recordReader(inv)}), brain.BackendBuiltin, nil
	}
	target := b.Backend
	if target == brain.BackendDefault {
		target = p.cfg.DefaultBackend
	}
	be, err := p.cfg.Backends.Get(target)
	if err != nil {
		return nil, "", err
	}
	return be, target, nil
}

// converse runs the model, executing the tool calls it makes under the perimeter,
// until it answers, the rounds run out, or the token budget is spent.
func (p *Pipeline) converse(ctx context.Context, inv *Invocation, be backend.Backend, req backend.ChatRequest, onDelta func(backend.Delta) error) conversation {
	b := inv.brain
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
		cv.content, cv.finish = resp.Content, oar.Bounded(resp.FinishReason, 64)
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
			result, outcome, err := p.runTool(ctx, inv, tc)
			cv.toolCalls = append(cv.toolCalls, outcome)
			if err != nil {
				cv.err = err
				return cv
			}
			req.Messages = append(req.Messages, backend.Message{Role: "tool", ToolCallID: tc.ID, Content: result})
		}
		if budget > 0 {
			req.MaxTokens = max(1, budget-cv.usage.CompletionTokens)
		}
	}
}

// backendError turns a backend failure into what the caller may see: never a URL or
// internal detail beyond what the operator configured.
func backendError(b *brain.Brain, beName string, timeout time.Duration, err error) *Error {
	var ie *Error
	var re *egress.RefusedError
	var be *backend.Error
	switch {
	case errors.As(err, &ie):
		return ie
	case errors.As(err, &re):
		return errorf(CodeEgressRefused, "brain %s's backend %s is not on the node's egress allowlist; the connection was refused before it was made (and audited)", b.ID, re.Address)
	case errors.Is(err, context.DeadlineExceeded):
		return errorf(CodeTimeBudget, "brain %s exceeded its time budget of %s", b.ID, timeout)
	case errors.As(err, &be):
		return errorf(CodeBackendError, "brain %s's model backend answered %d: %s", b.ID, be.Status, be.Message)
	}
	return errorf(CodeBackendUnavailable, "brain %s's model backend (%s) could not be reached", b.ID, beName)
}

func toBackend(b *brain.Brain, msgs []Message) []backend.Message {
	out := make([]backend.Message, 0, len(msgs)+1)
	if b.SystemPrompt != "" {
		out = append(out, backend.Message{Role: "system", Content: b.SystemPrompt})
	}
	for _, m := range msgs {
		out = append(out, backend.Message{Role: m.Role, Content: m.Content, Name: m.Name, ToolCallID: m.ToolCallID})
	}
	return out
}
