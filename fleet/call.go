package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/sios-project/sios/jcs"
)

// The remote-call protocol (docs/federation.md): an origin POSTs a CallRequest to
// InvokePath on the target's fleet API; the target answers a CallResponse. The
// envelope is signed by the origin and holds the payload's digest; the reply is signed
// by the target and holds the output's digest.

// InvokePath is where a node serves its peers' remote calls.
const InvokePath = "/fleet/v1/invoke"

// MemorySearchPath is where a node serves governed memory searches: a peer asks, on
// behalf of one of its principals and under a consent grant this node made, for the
// memories the grant releases (docs/consent.md). The request and answer are those of
// InvokePath: a CallRequest whose envelope is fed-call/2, answered by a CallResponse.
const MemorySearchPath = "/fleet/v1/memory/search"

// Caps on the remote-call protocol's bytes, the same on both sides.
const (
	// MaxCallPayload is the largest request payload a target accepts.
	MaxCallPayload = 4 << 20
	// MaxCallAnswer is the largest answer an origin accepts from a target.
	MaxCallAnswer = 8 << 20
	// MaxCallRequest bounds a whole call body: payload, envelope and the JSON around them.
	MaxCallRequest = MaxCallPayload + MaxEnvelopeSize2 + 1024
	// MaxSearchPayload is the largest governed memory search payload a holder accepts:
	// a question and the subjects asked about.
	MaxSearchPayload = 16 << 10
	// MaxSearchRequest bounds a whole memory search body.
	MaxSearchRequest = MaxSearchPayload + MaxEnvelopeSize2 + 1024
)

// CallRequest is the body of a remote call.
type CallRequest struct {
	Envelope json.RawMessage `json:"envelope"`
	Payload  json.RawMessage `json:"payload"` // the chat request; the envelope holds its digest
}

// CallResponse is the target's answer. Status is the HTTP status the origin's caller
// should see; Reply is signed; Output is what Reply.OutputDigest commits to.
type CallResponse struct {
	Status int             `json:"status"`
	Reply  json.RawMessage `json:"reply,omitempty"`
	Output json.RawMessage `json:"output,omitempty"`
	// Error is set when the envelope itself was refused (no signed reply).
	Error *CallError `json:"error,omitempty"`
}

// CallError says why a target refused a call without a signed reply.
type CallError struct {
	Status  int    `json:"status"`
	Type    string `json:"type"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

// CallOutput is a served call's answer.
type CallOutput struct {
	Content      string    `json:"content"`
	FinishReason string    `json:"finish_reason"`
	Usage        CallUsage `json:"usage"`
	// ToolCalls are the model's calls of the origin's caller's own tools, in OpenAI's
	// form, when FinishReason is "tool_calls".
	ToolCalls json.RawMessage `json:"tool_calls,omitempty"`
}

// CallUsage is token accounting, as OpenAI reports it.
type CallUsage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

// CallAnswer is what Invoke received.
type CallAnswer struct {
	Response CallResponse
	// RetryAfter is the target's Retry-After, when it sent one (rate limits).
	RetryAfter time.Duration
}

// ErrMalformedAnswer marks an answer that is not a CallResponse within MaxCallAnswer.
var ErrMalformedAnswer = errors.New("malformed answer")

// Invoke sends one remote call to peer and returns its answer, unverified: the caller
// checks the reply's signature. An error from the connection is returned as the
// transport gave it (a *net.OpError with Op "dial" means the call was never sent).
func (f *Fleet) Invoke(ctx context.Context, peer Peer, req *CallRequest) (*CallAnswer, error) {
	return f.call(ctx, peer, InvokePath, req)
}

// MemorySearch sends one governed memory search to peer (MemorySearchPath) and returns
// its answer, unverified, as Invoke does.
func (f *Fleet) MemorySearch(ctx context.Context, peer Peer, req *CallRequest) (*CallAnswer, error) {
	return f.call(ctx, peer, MemorySearchPath, req)
}

func (f *Fleet) call(ctx context.Context, peer Peer, path string, req *CallRequest) (*CallAnswer, error) {
	body, err := Marshal(req)
	if err != nil {
		return nil, err
	}
	resp, err := f.Post(ctx, peer.NodeID, peer.Addr, path, body)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	ans := &CallAnswer{}
	if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && secs > 0 && secs < 3600 {
		ans.RetryAfter = time.Duration(secs) * time.Second
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, MaxCallAnswer+1))
	if err != nil {
		return nil, err
	}
	r, err := ParseCallResponse(raw)
	if err != nil {
		return nil, err
	}
	ans.Response = *r
	return ans, nil
}

// ParseCallRequest reads the body of a remote call strictly (jcs.DecodeStrict): at
// most limit bytes (MaxCallRequest, MaxSearchRequest, or the decision call's own cap),
// no member repeated, differently cased or unknown, envelope and payload present. The
// envelope and the payload are the caller's to parse and check.
func ParseCallRequest(raw []byte, limit int) (*CallRequest, error) {
	if len(raw) > limit {
		return nil, fmt.Errorf("the call is more than %d bytes", limit)
	}
	var rq CallRequest
	if err := jcs.DecodeStrict(raw, &rq); err != nil {
		return nil, fmt.Errorf("the call is not {envelope, payload}: %v", err)
	}
	if rq.Envelope == nil || rq.Payload == nil {
		return nil, errors.New("the call is not {envelope, payload}: both are required")
	}
	return &rq, nil
}

// ParseCallResponse reads a target's answer strictly (jcs.DecodeStrict), within
// MaxCallAnswer. Errors wrap ErrMalformedAnswer. The reply's signature and the
// output's digest are the caller's to check.
func ParseCallResponse(raw []byte) (*CallResponse, error) {
	if len(raw) > MaxCallAnswer {
		return nil, fmt.Errorf("%w: more than %d bytes (MaxCallAnswer)", ErrMalformedAnswer, MaxCallAnswer)
	}
	var resp CallResponse
	if err := jcs.DecodeStrict(raw, &resp); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedAnswer, err)
	}
	return &resp, nil
}

// WriteCallResponse writes a target's answer, with Retry-After when retryAfter > 0. An
// answer the origin would refuse (ParseCallResponse: more than MaxCallAnswer bytes, or
// text that is not I-JSON, such as a Unicode noncharacter in a model's output) is
// replaced by an unsigned internal error saying why, so that both sides apply one rule.
func WriteCallResponse(w http.ResponseWriter, resp *CallResponse, retryAfter time.Duration) {
	b, err := Marshal(resp)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	if _, err := ParseCallResponse(b); err != nil {
		// "internal" is invoke.CodeInternal (this package cannot import invoke).
		b, _ = Marshal(&CallResponse{Status: http.StatusInternalServerError, Error: &CallError{
			Status: http.StatusInternalServerError, Type: "server_error", Code: "internal",
			Message: "the target could not send its answer: " + err.Error()}})
	}
	if retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((retryAfter+time.Second-1)/time.Second)))
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
}
