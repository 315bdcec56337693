package invoke

import (
	"time"

	"github.com/sios-project/sios/backend"
	"github.com/sios-project/sios/brain"
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
	Model       string
	Messages    []Message
	MaxTokens   *int
	Temperature *float64
	Stream      bool
	// Classification is the caller's marking of the data it sends (the
	// X-Sios-Classification header, or the envelope's); empty means OFFICIAL.
	Classification string

	// resolve
	started time.Time
	data    policy.Level
	brain   *brain.Brain // a local brain; nil when remote is set
	remote  *remoteBrain // a brain only peers offer
	route   string       // why "auto" chose the brain
	detail  map[string]string

	// authorise
	// Decision is the policy decision (or the perimeter's refusal) recorded for the
	// request.
	Decision *oar.Decision
	peers    []peerChoice // remote: the peers policy lets the request go to, best first

	// admit
	admission *oar.Record
	// Record is the hash of this node's record of the request: its admission record,
	// or its refusal's.
	Record string
	// receipt is the admission record's, once it is durable.
	receipt *oar.Receipt
}

// Message is one chat message. Its JSON form is what the admission record digests and
// what travels to a peer in a remote call's payload.
type Message struct {
	Role       string `json:"role"`
	Content    string `json:"content"`
	Name       string `json:"name,omitempty"`
	ToolCallID string `json:"tool_call_id,omitempty"`
}

// PeerCall is a peer's verified remote call: the target serves it as an invocation
// whose record carries the envelope.
type PeerCall struct {
	Origin   string // the origin node's id
	Envelope []byte // the signed envelope, exactly as received
	Call     string // fleet.CallHash of the envelope
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
