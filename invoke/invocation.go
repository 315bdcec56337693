package invoke

import (
	"encoding/json"
	"time"

	"github.com/sios-project/sios/backend"
	"github.com/sios-project/sios/brain"
	"github.com/sios-project/sios/consent"
	"github.com/sios-project/sios/jcs"
	"github.com/sios-project/sios/ledger"
	"github.com/sios-project/sios/oar"
	"github.com/sios-project/sios/policy"
)

// Invocation is one request for a brain as it passes through the pipeline. The caller
// fills the request members; each stage fills what it decided, in order, so that after
// Chat returns the Invocation says what became of the request.
type Invocation struct {
	// The request, as the API or a peer's envelope gave it (already validated).
	Principal *policy.Principal
	// Peer is set when a peer's verified envelope asked for this invocation; nil for a
	// local principal.
	Peer *PeerCall
	// Model is a brain id, or "auto" for the router.
	Model     string
	Messages  []Message
	MaxTokens *int
	// Params are the request's sampling, format and client-tool members; the brain's
	// file says which a caller may set (authorise refuses the others).
	Params Params
	Stream bool
	// Classification is the caller's marking of the data it sends (the
	// X-Sios-Classification header, or the envelope's); empty means OFFICIAL.
	Classification string
	// Consent is a consent grant the caller brings (the X-Sios-Consent header), exactly
	// as its origin signed it: a memory.read grant made at another institution naming
	// the caller, under which this node asks the holding node for what it releases,
	// for this request only, before the brain answers (descent.go). nil: none.
	Consent []byte

	// resolve
	started time.Time
	data    policy.Level
	brain   *brain.Brain // a local brain; nil when remote is set
	remote  *remoteBrain // a brain only peers offer
	route   string       // why "auto" chose the brain
	detail  map[string]any

	// authorise
	// Decision is the policy decision (or the perimeter's refusal) recorded for the
	// request.
	Decision *oar.Decision
	peers    []peerChoice // remote: the peers policy lets the request go to, best first

	// descent is the grant the caller brought, checked (authorise), and what its
	// holder released for this request (execute).
	descent *descent

	// admit
	// used is the grant a use was recorded of for a call to another institution;
	// links are the records the admission record links to (that use's).
	used      *consent.Entry
	links     []oar.Link
	admission *oar.Record
	// Record is the hash of this node's record of the request: its admission record,
	// or its refusal's.
	Record string
	// written is the admission record, durable; its receipt follows once sealed.
	written *ledger.Written

	// execute
	waited time.Duration // waiting for the model server or the peer (a stream's delivery included)
}

// Message is one chat message. Its JSON form — OpenAI's, content a string, or parts
// when it holds images — is what the admission record digests and what travels to a
// peer in a remote call's payload.
type Message struct {
	Role       string             `json:"role"`
	Content    string             `json:"-"` // the text (of every text part)
	Parts      []backend.Part     `json:"-"` // set when the content holds images, in order
	Name       string             `json:"name,omitempty"`
	ToolCallID string             `json:"tool_call_id,omitempty"`
	ToolCalls  []backend.ToolCall `json:"tool_calls,omitempty"`
}

// MarshalJSON writes content as a string, or as its parts when it holds images.
func (m Message) MarshalJSON() ([]byte, error) {
	return m.appendJSON(nil), nil
}

// appendJSON appends the message's JSON: role, content, then name, tool_call_id and
// tool_calls when set, as encoding/json wrote it by reflection (HTML escapes on), so
// that the digest of a request's messages stays what it was
// (TestMessagesJSONIsEncodingJSON).
func (m *Message) appendJSON(dst []byte) []byte {
	dst = append(dst, `{"role":`...)
	dst = jcs.AppendQuoted(dst, m.Role, true)
	dst = append(dst, `,"content":`...)
	if len(m.Parts) > 0 {
		dst = backend.AppendPartsJSON(dst, m.Parts)
	} else {
		dst = jcs.AppendQuoted(dst, m.Content, true)
	}
	if m.Name != "" {
		dst = append(dst, `,"name":`...)
		dst = jcs.AppendQuoted(dst, m.Name, true)
	}
	if m.ToolCallID != "" {
		dst = append(dst, `,"tool_call_id":`...)
		dst = jcs.AppendQuoted(dst, m.ToolCallID, true)
	}
	if len(m.ToolCalls) > 0 {
		dst = backend.AppendToolCallsJSON(append(dst, `,"tool_calls":`...), m.ToolCalls)
	}
	return append(dst, '}')
}

// messagesJSON is msgs as json.Marshal writes them.
func messagesJSON(msgs []Message) []byte {
	if msgs == nil {
		return []byte("null")
	}
	n := 2
	for i := range msgs {
		n += len(msgs[i].Content) + 64
	}
	dst := append(make([]byte, 0, n), '[')
	for i := range msgs {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = msgs[i].appendJSON(dst)
	}
	return append(dst, ']')
}

// Params are a request's members beyond the messages: sampling and format settings
// forwarded to the model server, backend options, and the caller's own (client-side)
// tools.
type Params struct {
	Temperature, TopP, FrequencyPenalty, PresencePenalty *float64
	Stop                                                 []string
	Seed                                                 *int64
	ResponseFormat                                       json.RawMessage
	User                                                 string
	Options                                              json.RawMessage
	Tools                                                []backend.Tool
	ToolChoice                                           json.RawMessage
	ParallelToolCalls                                    *bool
}

// set lists the members a caller set that a brain must allow (brain.Brain.Parameters);
// client tools are allowed by name instead.
func (p *Params) set() []string {
	var out []string
	add := func(on bool, name string) {
		if on {
			out = append(out, name)
		}
	}
	add(p.Temperature != nil, "temperature")
	add(p.TopP != nil, "top_p")
	add(p.FrequencyPenalty != nil, "frequency_penalty")
	add(p.PresencePenalty != nil, "presence_penalty")
	add(len(p.Stop) > 0, "stop")
	add(p.Seed != nil, "seed")
	add(p.ResponseFormat != nil, "response_format")
	add(p.User != "", "user")
	add(p.Options != nil, "options")
	return out
}

// PeerCall is a peer's verified remote call: the target serves it as an invocation
// whose record carries the envelope.
type PeerCall struct {
	Origin   string // the origin node's id
	Envelope []byte // the signed envelope, exactly as received
	Call     string // fleet.CallHash of the envelope
	// Grant is the consent grant the envelope carries, verified by the caller against
	// the origin's keys and this call (consent.Verify); nil when it carries none.
	Grant *consent.Grant
}

// Sink receives a served request's answer. Start is called once, before any content,
// with the brain that serves the request and the admission record's receipt; then
// Delta for each streamed piece (streaming only); then Finish.
type Sink interface {
	Start(brain string, receipt *oar.Receipt) error
	Delta(content string) error
	Finish(r *Result) error
}

// Result is a served request's answer.
type Result struct {
	Content      string
	FinishReason string
	Usage        backend.Usage
	// ToolCalls are calls of the caller's own (client-side) tools the model made:
	// returned to the caller to run, with FinishReason "tool_calls".
	ToolCalls []backend.ToolCall
	// Fingerprint names the backend configuration that produced the answer
	// (system_fingerprint).
	Fingerprint string
}

// lastUser is the text of the last user message: what "auto" routes on and what the
// builtin backend answers.
func lastUser(msgs []Message) string {
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].Role == "user" {
			return msgs[i].Content
		}
	}
	return ""
}
