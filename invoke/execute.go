package invoke

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"strings"
	"time"

	"github.com/sios-project/sios/backend"
	"github.com/sios-project/sios/backend/builtin"
	"github.com/sios-project/sios/brain"
	"github.com/sios-project/sios/egress"
	"github.com/sios-project/sios/oar"
)

// The execute stage for a local brain: its backend (a model server, or the builtin
// one) runs the conversation. The tool calls the model makes of the node's own tools
// are executed inside the perimeter (tools.go); calls of the caller's own tools end the
// conversation and go back to the caller. A model that takes no tools is answered
// without them, with the tenant's memory retrieved into its prompt instead.

// ModelSettings are what the operator states about one model on the model servers
// (config "backend_models").
type ModelSettings struct {
	// Tools is false for a model that takes no tools (nil: it does, until a server says
	// otherwise).
	Tools *bool
	// Timeout, when set, is the time budget of a request to this model, in place of
	// the brain's.
	Timeout time.Duration
}

// conversation is the outcome of a brain's exchange with its backend.
type conversation struct {
	content     string
	finish      string
	usage       backend.Usage
	toolCalls   []toolOutcome
	clientCalls []backend.ToolCall // calls of the caller's tools, to return
	backend     string
	model       string
	path        string // "tools", "no tools: memory in the prompt", …
	streamed    streamed
	err         error
}

// streamed is what has gone to the caller of a streamed answer, for the completion
// record of one that broke off.
type streamed struct {
	bytes int
	hash  hash.Hash
}

func (s *streamed) add(text string) {
	if s.hash == nil {
		s.hash = sha256.New()
	}
	s.bytes += len(text)
	s.hash.Write([]byte(text))
}

// digest is the SHA-256 of everything streamed.
func (s *streamed) digest() oar.Digest {
	if s.hash == nil {
		return oar.DigestOf("streamed", nil)
	}
	return oar.Digest{Name: "streamed", SHA256: hex.EncodeToString(s.hash.Sum(nil)), Size: int64(s.bytes)}
}

// budget is the time an invocation may take and where that budget comes from.
type budget struct {
	d     time.Duration
	whose string
}

func (p *Pipeline) budgetFor(b *brain.Brain, model string) budget {
	if m, ok := p.cfg.Models[model]; ok && m.Timeout > 0 {
		return budget{m.Timeout, fmt.Sprintf("model %s's (config backend_models)", model)}
	}
	if t := time.Duration(b.Timeout); t > 0 {
		return budget{t, fmt.Sprintf("brain %s's", b.ID)}
	}
	return budget{defaultTimeout, "the node's default"}
}

func (p *Pipeline) execute(ctx context.Context, inv *Invocation, sink Sink) error {
	b := inv.brain
	if inv.descent != nil {
		// What the caller's grant releases at its holder, asked for now that the
		// request is admitted, and used for this request only.
		if e := p.descend(ctx, inv); e != nil {
			return p.complete(ctx, inv, nil, sink, p.withReceipt(ctx, inv, e))
		}
	}
	be, beName, err := p.backendFor(inv, b)
	if err != nil {
		p.cfg.Log.Error("backend", "brain", b.ID, "err", err)
		return p.complete(ctx, inv, nil, sink, p.withReceipt(ctx, inv, errorf(CodeBackendMisconfigured,
			"brain %s's backend is misconfigured; see the node's log", b.ID)))
	}
	breq, err := p.backendRequest(inv, beName)
	if err != nil {
		return p.complete(ctx, inv, nil, sink, p.withReceipt(ctx, inv, err.(*Error)))
	}
	bud := p.budgetFor(b, breq.Model)
	cctx, cancel := context.WithTimeout(ctx, bud.d)
	defer cancel()
	started := false
	start := func() error {
		if started {
			return nil
		}
		started = true
		rc, err := p.receipt(ctx, inv)
		if err != nil {
			return err
		}
		return sink.Start(b.ID, rc)
	}
	cv := conversation{backend: beName, model: breq.Model, path: "tools"}
	var onDelta func(backend.Delta) error
	if inv.Stream {
		onDelta = func(dl backend.Delta) error {
			if err := start(); err != nil {
				return err
			}
			if dl.Content == "" {
				return nil
			}
			cv.streamed.add(dl.Content)
			return sink.Delta(dl.Content)
		}
	}
	if m, ok := p.cfg.Models[breq.Model]; ok && m.Tools != nil && !*m.Tools {
		err = p.withoutTools(cctx, inv, &breq, &cv, "no tools (config backend_models)")
	}
	if err == nil {
		p.converse(cctx, inv, be, breq, onDelta, &cv)
		if noTools(cv.err) && len(breq.Tools) > 0 {
			// The model server says this model takes no tools: answer without them.
			p.cfg.Log.Warn("model takes no tools: answering with memory in the prompt", "brain", b.ID, "model", breq.Model)
			cv.err = p.withoutTools(cctx, inv, &breq, &cv, "no tools (the model server refused them)")
			if cv.err == nil {
				p.converse(cctx, inv, be, breq, onDelta, &cv)
			}
		}
	} else {
		cv.err = err
	}
	if cv.err != nil {
		e := p.failure(ctx, b, beName, breq.Model, bud, cv.err)
		if cv.streamed.bytes > 0 {
			p.cfg.Log.Warn("streamed answer broke off", "brain", b.ID, "code", e.Code, "streamed_bytes", cv.streamed.bytes, "err", cv.err)
		}
		if !started {
			p.withReceipt(ctx, inv, e)
		}
		return p.complete(ctx, inv, &cv, sink, e)
	}
	if err := start(); err != nil {
		return err
	}
	return p.complete(ctx, inv, &cv, sink, nil)
}

// backendRequest is the request the brain's backend gets: the brain's system prompt and
// model, the caller's messages, the members the brain lets callers set (its pins over
// them), its options with the caller's merged over them, the node's tools it allows and
// the caller's own tools.
func (p *Pipeline) backendRequest(inv *Invocation, beName string) (backend.ChatRequest, error) {
	b, prm := inv.brain, inv.Params
	maxTokens := b.MaxTokens
	if inv.MaxTokens != nil && *inv.MaxTokens > 0 && (maxTokens == 0 || *inv.MaxTokens < maxTokens) {
		maxTokens = *inv.MaxTokens
	}
	req := backend.ChatRequest{Model: b.Model, Messages: toBackend(b, inv.Messages), MaxTokens: maxTokens,
		Temperature: prm.Temperature, TopP: prm.TopP, FrequencyPenalty: prm.FrequencyPenalty, PresencePenalty: prm.PresencePenalty,
		Stop: prm.Stop, Seed: prm.Seed, ResponseFormat: prm.ResponseFormat, User: prm.User,
		Tools: toolDefs(b), ToolChoice: prm.ToolChoice, ParallelToolCalls: prm.ParallelToolCalls}
	if pin := b.Pin; true {
		req.Temperature = first(pin.Temperature, req.Temperature)
		req.TopP = first(pin.TopP, req.TopP)
		req.FrequencyPenalty = first(pin.FrequencyPenalty, req.FrequencyPenalty)
		req.PresencePenalty = first(pin.PresencePenalty, req.PresencePenalty)
		req.Seed = first(pin.Seed, req.Seed)
	}
	req.Tools = append(req.Tools, prm.Tools...)
	opts, err := mergeOptions(b.Options, prm.Options)
	if err != nil {
		return req, &Error{Code: CodeInvalidRequest, Param: "options", Message: err.Error()}
	}
	req.Options = opts
	if d := inv.descent; d != nil && beName != brain.BackendBuiltin {
		// The builtin backend retrieves them with the tenant's own memory (retriever).
		if text := d.releasedPrompt(); text != "" {
			if len(req.Messages) > 0 && req.Messages[0].Role == "system" {
				req.Messages[0].Content += text
			} else {
				req.Messages = append([]backend.Message{{Role: "system", Content: strings.TrimSpace(text)}}, req.Messages...)
			}
		}
	}
	switch {
	case beName == brain.BackendBuiltin:
		req.Model = b.ID
	case req.Model == "":
		req.Model = p.cfg.DefaultModel
	}
	if req.Model == "" {
		return req, errorf(CodeNoModel, "brain %s names no model for its backend and the node has no default model (config \"model\" or sios up --model)", b.ID)
	}
	return req, nil
}

func first[T any](a, b *T) *T {
	if a != nil {
		return a
	}
	return b
}

// mergeOptions is the brain's options with the caller's over them, as one JSON object.
func mergeOptions(brainOpts map[string]any, callerOpts json.RawMessage) (json.RawMessage, error) {
	if len(brainOpts) == 0 && callerOpts == nil {
		return nil, nil
	}
	out := map[string]any{}
	for k, v := range brainOpts {
		out[k] = v
	}
	if callerOpts != nil {
		var c map[string]any
		if err := json.Unmarshal(callerOpts, &c); err != nil {
			return nil, errors.New("options must be a JSON object")
		}
		for k, v := range c {
			out[k] = v
		}
	}
	return json.Marshal(out)
}

// noTools says whether a backend's error says the model takes no tools (Ollama: "…
// does not support tools"; llama.cpp and vLLM say tools are not supported/enabled).
func noTools(err error) bool {
	var be *backend.Error
	if !errors.As(err, &be) || be.Status != http.StatusBadRequest {
		return false
	}
	m := strings.ToLower(be.Message)
	return strings.Contains(m, "does not support tools") || strings.Contains(m, "tools are not supported") ||
		strings.Contains(m, "tool calling is not supported") || strings.Contains(m, "tool use is not enabled") ||
		strings.Contains(m, "\"auto\" tool choice requires")
}

// withoutTools prepares a request for a model that takes no tools: the node's tools are
// taken out, and — in their place — the tenant's memory that the brain could have
// searched is retrieved now and put in the system prompt, cited. A request that offers
// the caller's own tools cannot be answered without them.
func (p *Pipeline) withoutTools(ctx context.Context, inv *Invocation, req *backend.ChatRequest, cv *conversation, why string) error {
	if len(inv.Params.Tools) > 0 {
		return errorf(CodeBackendNoTools, "brain %s's model %s takes no tools, and the request offers tools of its own", inv.brain.ID, req.Model)
	}
	req.Tools, req.ToolChoice, req.ParallelToolCalls = nil, nil, nil
	cv.path = why
	if !contains(inv.brain.Tools, "memory.search") {
		return nil
	}
	res, _, err := p.readMemory(ctx, inv.Principal, "", lastUser(inv.Messages), 5, p.flowsTo(inv), "no-tools-retrieval")
	var ie *Error
	if errors.As(err, &ie) && ie.Code == CodeAuditFailed {
		return err
	}
	if err != nil || len(res) == 0 {
		cv.path = why + "; no memory found"
		return nil
	}
	var sb strings.Builder
	sb.WriteString("\n\nPassages from the organisation's memory (cite them by their ids):\n")
	for _, r := range res {
		fmt.Fprintf(&sb, "[%s] (%s, %s) %s\n", r.ID, r.Classification, r.Created.Format(time.DateOnly), r.Text)
	}
	if len(req.Messages) > 0 && req.Messages[0].Role == "system" {
		req.Messages[0].Content += sb.String()
	} else {
		req.Messages = append([]backend.Message{{Role: "system", Content: strings.TrimSpace(sb.String())}}, req.Messages...)
	}
	cv.path = fmt.Sprintf("%s; %d memories in the prompt", why, len(res))
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// withReceipt attaches the admission's receipt to a failure after admission (none if
// the ledger failed before sealing it: the failure goes out as it is).
func (p *Pipeline) withReceipt(ctx context.Context, inv *Invocation, e *Error) *Error {
	e.Receipt, _ = p.receipt(ctx, inv)
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

// converse runs the model, executing the calls it makes of the node's tools under the
// perimeter, until it answers, calls one of the caller's tools, the rounds run out, or
// the token budget is spent.
func (p *Pipeline) converse(ctx context.Context, inv *Invocation, be backend.Backend, req backend.ChatRequest, onDelta func(backend.Delta) error, cv *conversation) {
	b := inv.brain
	cv.err = nil
	budget := req.MaxTokens
	for round := 0; ; round++ {
		asked := time.Now()
		resp, err := be.Chat(ctx, req, onDelta)
		inv.waited += time.Since(asked)
		if err != nil {
			cv.err = err
			return
		}
		cv.usage.PromptTokens += resp.Usage.PromptTokens
		cv.usage.CompletionTokens += resp.Usage.CompletionTokens
		cv.usage.TotalTokens += resp.Usage.TotalTokens
		cv.content, cv.finish = resp.Content, oar.Bounded(resp.FinishReason, 64)
		if len(resp.ToolCalls) == 0 {
			return
		}
		// Calls of the caller's own tools end the conversation: they go back to it.
		var ours []backend.ToolCall
		for _, tc := range resp.ToolCalls {
			if isClientTool(inv, tc.Function.Name) {
				cv.clientCalls = append(cv.clientCalls, tc)
			} else {
				ours = append(ours, tc)
			}
		}
		if len(cv.clientCalls) > 0 {
			for _, tc := range ours {
				// Mixed with the caller's calls, the node's cannot be answered in this
				// conversation: recorded as not run.
				cv.toolCalls = append(cv.toolCalls, toolOutcome{Name: oar.Bounded(tc.Function.Name, oar.MaxOutsideValue), Error: "not run: the model also called the caller's tools"})
			}
			cv.finish = "tool_calls"
			return
		}
		if round == maxToolRounds || (budget > 0 && cv.usage.CompletionTokens >= budget) {
			cv.finish = "length"
			if cv.content == "" {
				cv.content = fmt.Sprintf("[stopped: brain %s reached its limit of %d tool rounds or %d tokens]", b.ID, maxToolRounds, budget)
			}
			return
		}
		req.Messages = append(req.Messages, backend.Message{Role: "assistant", Content: resp.Content, ToolCalls: resp.ToolCalls})
		for _, tc := range resp.ToolCalls {
			result, outcome, err := p.runTool(ctx, inv, tc)
			cv.toolCalls = append(cv.toolCalls, outcome)
			if err != nil {
				cv.err = err
				return
			}
			req.Messages = append(req.Messages, backend.Message{Role: "tool", ToolCallID: tc.ID, Content: result})
		}
		if budget > 0 {
			req.MaxTokens = max(1, budget-cv.usage.CompletionTokens)
		}
	}
}

func isClientTool(inv *Invocation, name string) bool {
	for _, t := range inv.Params.Tools {
		if t.Function.Name == name {
			return true
		}
	}
	return false
}

// failure turns a backend failure into what the caller may see — never a URL or
// internal detail beyond what the operator configured — with the real cause: the
// caller gone, the budget spent, the answer broken off.
func (p *Pipeline) failure(parent context.Context, b *brain.Brain, beName, model string, bud budget, err error) *Error {
	var ie *Error
	var re *egress.RefusedError
	var be *backend.Error
	switch {
	case errors.As(err, &ie):
		return ie
	case parent.Err() != nil:
		return errorf(CodeClientClosed, "the caller closed the request before brain %s answered", b.ID)
	case errors.As(err, &re):
		return errorf(CodeEgressRefused, "brain %s's backend %s is not on the node's egress allowlist; the connection was refused before it was made (and audited)", b.ID, re.Address)
	case errors.Is(err, context.DeadlineExceeded):
		return errorf(CodeTimeBudget, "%s time budget of %s ran out before brain %s answered", bud.whose, bud.d, b.ID)
	case errors.As(err, &be) && be.Status == http.StatusNotFound:
		return errorf(CodeBackendModelNotFound, "brain %s's model %q is not on its model server (the server answered 404: %s)", b.ID, model, be.Message)
	case errors.As(err, &be) && be.Status == 0:
		return errorf(CodeBackendClosed, "brain %s's model server reported an error mid-answer: %s", b.ID, be.Message)
	case errors.As(err, &be):
		return errorf(CodeBackendError, "brain %s's model server answered %d: %s", b.ID, be.Status, be.Message)
	case streamBroken(err):
		return errorf(CodeBackendClosed, "brain %s's model server closed its answer before it was done", b.ID)
	}
	return errorf(CodeBackendUnavailable, "brain %s's model server (%s) could not be reached", b.ID, beName)
}

// streamBroken says whether err is a connection that broke after it answered.
func streamBroken(err error) bool {
	s := err.Error()
	return strings.Contains(s, "unexpected EOF") || strings.Contains(s, "connection reset") || strings.Contains(s, "stream ended")
}

// backendError is failure for callers without a parent context (embeddings).
func backendError(b *brain.Brain, beName string, timeout time.Duration, err error) *Error {
	return (&Pipeline{}).failure(context.Background(), b, beName, "", budget{timeout, fmt.Sprintf("brain %s's", b.ID)}, err)
}

// fingerprint names the backend configuration that produced an answer
// (system_fingerprint): the backend, the model and the brain.
func fingerprint(backendName, model, brainID string) string {
	s := sha256.Sum256([]byte(backendName + "\n" + model + "\n" + brainID))
	return "fp_sios_" + hex.EncodeToString(s[:5])
}

func toBackend(b *brain.Brain, msgs []Message) []backend.Message {
	out := make([]backend.Message, 0, len(msgs)+1)
	if b.SystemPrompt != "" {
		out = append(out, backend.Message{Role: "system", Content: b.SystemPrompt})
	}
	for _, m := range msgs {
		out = append(out, backend.Message{Role: m.Role, Content: m.Content, Parts: m.Parts, Name: m.Name,
			ToolCallID: m.ToolCallID, ToolCalls: m.ToolCalls})
	}
	return out
}
