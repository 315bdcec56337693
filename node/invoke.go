package node

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/sios-project/sios/api"
	"github.com/sios-project/sios/backend"
	"github.com/sios-project/sios/brain"
	"github.com/sios-project/sios/egress"
	"github.com/sios-project/sios/oar"
	"github.com/sios-project/sios/policy"
)

var b64url = base64.RawURLEncoding

const (
	// maxToolRounds bounds the model ⇄ tool exchanges of one invocation.
	maxToolRounds = 4
	// defaultTimeout applies to a brain without a time budget.
	defaultTimeout = 60 * time.Second
)

// Authenticate implements api.Gateway. A key the store does not know triggers one
// reload, so that principals added by the CLI while the node runs are seen at once.
func (n *Node) Authenticate(key string) (*policy.Principal, bool) {
	if p, ok := n.principals.Authenticate(key); ok {
		return p, true
	}
	if err := n.principals.Refresh(); err != nil {
		n.log.Error("reload principals", "err", err)
		return nil, false
	}
	return n.principals.Authenticate(key)
}

// Models implements api.Gateway: the brains the principal may invoke, and "auto".
func (n *Node) Models(ctx context.Context, p *policy.Principal) ([]api.Model, error) {
	out := []api.Model{{ID: "auto", Title: "Deterministic router: picks the domain brain for the prompt", Kind: "router"}}
	for _, b := range n.brains.All() {
		if d := n.decideInvoke(p, b, policy.Official); d.Allow {
			out = append(out, api.Model{ID: b.ID, Kind: b.Kind, Classification: b.Classification, Title: b.Title})
		}
	}
	if n.fleet == nil {
		return out, nil
	}
	offered := n.fleet.Offered()
	for _, id := range slices.Sorted(maps.Keys(offered)) {
		if _, local := n.brains.Get(id); local {
			continue
		}
		rb, _ := n.remoteBrain(id, offered[id])
		for _, peer := range rb.peers {
			if d := n.decidePeer(p, rb.brain, peer, policy.Official); d.Allow {
				out = append(out, api.Model{ID: id, Kind: rb.brain.Kind, Classification: rb.brain.Classification,
					Title: "offered by peer " + peer.NodeID, OwnedBy: peer.NodeID})
				break
			}
		}
	}
	return out, nil
}

// decideInvoke asks the policy engine whether p may send data of level data to b.
func (n *Node) decideInvoke(p *policy.Principal, b *brain.Brain, data policy.Level) policy.Decision {
	lvl, err := policy.ParseLevel(b.Classification)
	if err != nil {
		return policy.Decision{Errors: []string{err.Error()}}
	}
	return n.policy.Decide(policy.Request{
		Principal: *p,
		Action:    policy.ActionInvoke,
		Resource:  policy.Resource{Type: policy.ResourceBrain, ID: b.ID, Classification: lvl, Kind: b.Kind},
		Context:   policy.Context{Tenant: p.Tenant, DataClassification: data, TargetAccreditation: n.accreditation(b, lvl)},
	})
}

// accreditation is where a brain's data flows: the lower of the brain's ceiling and its
// backend's accreditation. The builtin backend never leaves the process.
func (n *Node) accreditation(b *brain.Brain, brainLvl policy.Level) policy.Level {
	if l, err := policy.ParseLevel(n.cfg.Accreditation); err == nil {
		brainLvl = min(brainLvl, l) // the node's own accreditation caps everything on it
	}
	if b.Backend == "builtin" || (b.Backend == "" && n.cfg.Backend == "builtin") {
		return brainLvl
	}
	return min(brainLvl, n.backendLvl)
}

type admission struct {
	receipt *oar.Receipt
	header  string
	err     error
}

// Chat implements api.Gateway: the governed invocation of a brain.
func (n *Node) Chat(ctx context.Context, p *policy.Principal, req *api.ChatRequest, w api.ChatWriter) error {
	started := time.Now()
	data := policy.Official
	if req.Classification != "" {
		lvl, err := policy.ParseLevel(req.Classification)
		if err != nil {
			return &api.Error{Status: http.StatusBadRequest, Type: "invalid_request_error", Code: "invalid_classification",
				Message: "X-Sios-Classification: " + err.Error()}
		}
		data = lvl
	}
	msgsJSON, _ := json.Marshal(req.Messages)
	rec := &oar.Record{
		Tenant: p.Tenant, Actor: oar.Actor{ID: p.ID, Clearance: p.Clearance.String()},
		Action: "brain.invoke", Classification: data.String(),
		Inputs: []oar.Digest{oar.DigestOf("messages", msgsJSON)},
	}
	var b *brain.Brain
	var route string
	if req.Model == "auto" {
		b, route = n.brains.RouteAmong(lastUser(req.Messages), func(c *brain.Brain) bool {
			return n.decideInvoke(p, c, data).Allow
		})
	} else if got, ok := n.brains.Get(req.Model); ok {
		b = got
	}
	rc := remoteFrom(ctx)
	if rc != nil {
		// Served for a peer: the record carries the peer's signed envelope.
		rec.Parties = []json.RawMessage{rc.envelope}
		rec.Detail = mustJSON(map[string]string{"origin": rc.origin, "call": rc.call})
	} else if b == nil && req.Model != "auto" {
		if rb, ok := n.findRemote(req.Model); ok {
			return n.chatRemote(ctx, p, req, data, rec, rb, w)
		}
	}
	if b == nil {
		rec.Resource = "brain/" + req.Model
		rec.Decision = &oar.Decision{Effect: "deny"}
		rec.Detail = mustJSON(map[string]string{"reason": "no such brain"})
		return n.refuse(ctx, rec, &api.Error{Status: http.StatusNotFound, Type: "invalid_request_error", Code: "model_not_found",
			Param: "model", Message: fmt.Sprintf("no brain %q: GET /v1/models lists the brains you may use", req.Model)})
	}
	rec.Resource = "brain/" + b.ID
	if route != "" {
		rec.Detail = mustJSON(map[string]string{"requested": "auto", "route": route})
	}
	d := n.decideInvoke(p, b, data)
	rec.Decision = &oar.Decision{Effect: d.Effect(), Policies: d.Reasons}
	if rc != nil {
		rc.decision = rec.Decision
	}
	if !d.Allow {
		why := "no policy permits it"
		if len(d.Reasons) > 0 {
			why = "forbidden by " + strings.Join(d.Reasons, ", ")
		}
		return n.refuse(ctx, rec, &api.Error{Status: http.StatusForbidden, Type: "permission_error", Code: "policy_denied",
			Message: fmt.Sprintf("principal %s may not use brain %s (%s) with %s data: %s", p.ID, b.ID, b.Classification, data, why)})
	}
	if ok, wait := n.limits.take("principal/"+p.Tenant+"/"+p.ID, n.cfg.PrincipalRequestsPerMinute, n.cfg.PrincipalBurst); !ok {
		rec.Decision = &oar.Decision{Effect: "deny", Policies: []string{"rate-limit-principal"}}
		return n.refuse(ctx, rec, &api.Error{Status: http.StatusTooManyRequests, Type: "rate_limit_error", Code: "rate_limit_exceeded",
			RetryAfter: wait, Message: fmt.Sprintf("principal %s is over its rate limit; retry after %s", p.ID, wait.Round(time.Millisecond))})
	}
	if ok, wait := n.limits.take("brain/"+b.ID, b.RateLimit.RequestsPerMinute, b.RateLimit.Burst); !ok {
		rec.Decision = &oar.Decision{Effect: "deny", Policies: []string{"rate-limit-brain"}}
		return n.refuse(ctx, rec, &api.Error{Status: http.StatusTooManyRequests, Type: "rate_limit_error", Code: "rate_limit_exceeded",
			RetryAfter: wait, Message: fmt.Sprintf("brain %s is over its rate limit of %d requests per minute; retry after %s",
				b.ID, b.RateLimit.RequestsPerMinute, wait.Round(time.Millisecond))})
	}

	// The admission record is written ahead: durable and sealed while the backend works.
	admissionHash, err := n.prepare(rec)
	if err != nil {
		return err
	}
	if rc != nil {
		rc.record = admissionHash
	}
	admitted := make(chan admission, 1)
	go func() {
		rc, hdr, err := n.audit(context.WithoutCancel(ctx), rec)
		admitted <- admission{rc, hdr, err}
	}()
	var adm *admission
	waitAdmission := func() error {
		if adm == nil {
			a := <-admitted
			adm = &a
		}
		if adm.err != nil {
			n.log.Error("admission record", "err", adm.err)
			return &api.Error{Status: http.StatusServiceUnavailable, Type: "api_error", Code: "audit_unavailable",
				Message: "the audit ledger could not record this request, so it was not served"}
		}
		return nil
	}
	startOnce := false
	start := func() error {
		if startOnce {
			return nil
		}
		if err := waitAdmission(); err != nil {
			return err
		}
		startOnce = true
		return w.Start(b.ID, adm.header)
	}

	be, beName, err := n.backendFor(b)
	if err != nil {
		if werr := waitAdmission(); werr != nil {
			return werr
		}
		n.log.Error("backend", "brain", b.ID, "err", err)
		return n.complete(ctx, p, b, admissionHash, nil, nil, started, &api.Error{Status: http.StatusBadGateway,
			Type: "api_error", Code: "backend_misconfigured", Receipt: adm.header,
			Message: fmt.Sprintf("brain %s's backend is misconfigured; see the node's log", b.ID)})
	}
	maxTokens := b.MaxTokens
	if m := req.MaxOutputTokens(); m > 0 && (maxTokens == 0 || m < maxTokens) {
		maxTokens = m
	}
	timeout := time.Duration(b.Timeout)
	if timeout <= 0 {
		timeout = defaultTimeout
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	breq := backend.ChatRequest{Model: b.Model, Messages: toBackend(b, req.Messages), MaxTokens: maxTokens,
		Temperature: req.Temperature, Tools: n.toolDefs(b)}
	if be == n.builtin {
		breq.Model = b.ID
		cctx = context.WithValue(cctx, principalKey{}, p)
	} else if breq.Model == "" {
		breq.Model = n.cfg.Model
	}
	if breq.Model == "" {
		if err := waitAdmission(); err != nil {
			return err
		}
		return n.complete(ctx, p, b, admissionHash, nil, nil, started, &api.Error{Status: http.StatusBadGateway,
			Type: "api_error", Code: "no_model", Receipt: adm.header,
			Message: fmt.Sprintf("brain %s names no model for its backend and the node has no default model (config \"model\" or sios up --model)", b.ID)})
	}
	var onDelta func(backend.Delta) error
	if req.Stream {
		onDelta = func(dl backend.Delta) error {
			if err := start(); err != nil {
				return err
			}
			return w.Delta(api.Delta{Content: dl.Content})
		}
	}
	cv := n.converse(cctx, p, b, be, breq, onDelta, admissionHash)
	cv.backend = beName
	if cv.err != nil {
		if err := waitAdmission(); err != nil {
			return err
		}
		cv.err = backendError(b, beName, timeout, cv.err)
		var ae *api.Error
		if errors.As(cv.err, &ae) && !startOnce {
			ae.Receipt = adm.header
		}
		return n.complete(ctx, p, b, admissionHash, &cv, w, started, cv.err)
	}
	if err := start(); err != nil {
		return err
	}
	return n.complete(ctx, p, b, admissionHash, &cv, w, started, nil)
}

// prepare fills the members Append would and returns the record's hash, so that later
// records can link to it before it is durable.
func (n *Node) prepare(rec *oar.Record) (string, error) {
	rec.V, rec.Kind, rec.Node = oar.Version, oar.KindRecord, n.ID()
	rec.Time = oar.FormatTime(time.Now())
	e, err := rec.Encode()
	if err != nil {
		return "", fmt.Errorf("audit record: %w", err)
	}
	return hex.EncodeToString(oar.RecordHash(e)), nil
}

// refuse makes the refusal's record durable, then returns the error carrying its receipt.
func (n *Node) refuse(ctx context.Context, rec *oar.Record, e *api.Error) error {
	if rc := remoteFrom(ctx); rc != nil {
		// The reply to the peer names this record and the decision.
		if h, err := n.prepare(rec); err == nil {
			rc.record = h
		}
		rc.decision = rec.Decision
	}
	_, hdr, err := n.audit(context.WithoutCancel(ctx), rec)
	if err != nil {
		n.log.Error("audit refusal", "err", err)
		return &api.Error{Status: http.StatusServiceUnavailable, Type: "api_error", Code: "audit_unavailable",
			Message: "the audit ledger could not record this request"}
	}
	e.Receipt = hdr
	return e
}

// complete writes the completion record (in the background: the response does not wait
// for it; Close does) and finishes the response.
func (n *Node) complete(ctx context.Context, p *policy.Principal, b *brain.Brain, admissionHash string, cv *conversation,
	w api.ChatWriter, started time.Time, failure error) error {
	detail := map[string]any{"latency_ms": time.Since(started).Milliseconds()}
	rec := &oar.Record{
		Tenant: p.Tenant, Actor: oar.Actor{ID: p.ID, Clearance: p.Clearance.String()},
		Action: "brain.complete", Resource: "brain/" + b.ID,
		Links: []oar.Link{{Rel: "admission", RecordHash: admissionHash}},
	}
	if cv != nil {
		rec.Outputs = []oar.Digest{oar.DigestOf("completion", []byte(cv.content))}
		detail["usage"], detail["finish_reason"], detail["tool_calls"], detail["backend"] = cv.usage, cv.finish, cv.toolCalls, cv.backend
	}
	if failure != nil {
		var ae *api.Error
		if errors.As(failure, &ae) {
			detail["error"] = ae.Code
		} else {
			detail["error"] = "internal"
		}
	}
	rec.Detail = mustJSON(detail)
	n.bg.Add(1)
	go func() {
		defer n.bg.Done()
		if _, _, err := n.ledger.Append(context.WithoutCancel(ctx), rec); err != nil {
			n.log.Error("completion record", "brain", b.ID, "err", err)
		}
	}()
	if failure != nil {
		return failure
	}
	return w.Finish(&api.ChatResult{Content: cv.content, FinishReason: cv.finish, Usage: api.Usage{
		PromptTokens: cv.usage.PromptTokens, CompletionTokens: cv.usage.CompletionTokens, TotalTokens: cv.usage.TotalTokens}})
}

// backendError turns a backend failure into what the caller may see: never a URL or
// internal detail beyond what the operator configured.
func backendError(b *brain.Brain, beName string, timeout time.Duration, err error) error {
	var ae *api.Error
	var re *egress.RefusedError
	var be *backend.Error
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.As(err, &re):
		return &api.Error{Status: http.StatusBadGateway, Type: "api_error", Code: "egress_refused",
			Message: fmt.Sprintf("brain %s's backend %s is not on the node's egress allowlist; the connection was refused before it was made (and audited)", b.ID, re.Address)}
	case errors.Is(err, context.DeadlineExceeded):
		return &api.Error{Status: http.StatusGatewayTimeout, Type: "timeout_error", Code: "time_budget_exceeded",
			Message: fmt.Sprintf("brain %s exceeded its time budget of %s", b.ID, timeout)}
	case errors.As(err, &be):
		return &api.Error{Status: http.StatusBadGateway, Type: "api_error", Code: "backend_error",
			Message: fmt.Sprintf("brain %s's model backend answered %d: %s", b.ID, be.Status, be.Message)}
	}
	return &api.Error{Status: http.StatusBadGateway, Type: "api_error", Code: "backend_unavailable",
		Message: fmt.Sprintf("brain %s's model backend (%s) could not be reached", b.ID, beName)}
}

func toBackend(b *brain.Brain, msgs []api.ChatMessage) []backend.Message {
	out := make([]backend.Message, 0, len(msgs)+1)
	if b.SystemPrompt != "" {
		out = append(out, backend.Message{Role: "system", Content: b.SystemPrompt})
	}
	for _, m := range msgs {
		out = append(out, backend.Message{Role: m.Role, Content: string(m.Content), Name: m.Name, ToolCallID: m.ToolCallID})
	}
	return out
}

func lastUser(msgs []api.ChatMessage) string {
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].Role == "user" {
			return string(msgs[i].Content)
		}
	}
	return ""
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
