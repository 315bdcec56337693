// Package invoke is the node's governed invocation pipeline. A request for a brain —
// from the API, or from a peer's verified envelope — becomes one Invocation that passes
// through stages which read top-down, each in its own file:
//
//	resolve   (resolve.go)   which brain: local, "auto", or one only peers offer
//	authorise (authorise.go) policy, with the policies behind the decision
//	admit     (admit.go)     the perimeter's rate limits, then the admission record
//	execute   (execute.go)   a backend with the brain's tools, or a peer (remote.go)
//	complete  (complete.go)  the completion record, linked to the admission
//
// A request refused at any stage leaves a record of the refusal; a request whose
// record cannot be written is not served. The pipeline returns typed outcomes (*Error,
// by Code) and speaks no HTTP: package api turns outcomes into responses.
//
// Memory requests (memory.go) and embeddings (embed.go) pass the same authorisation and
// perimeter. Consent grants (consent.go) are made, listed and revoked here; a request
// whose data would go to another institution needs one (authorise.go, admit.go,
// remote.go), and a person who works in two places draws on what the other holds
// about her work through one: the requester asks (descent.go), the holder releases
// (release.go).
package invoke

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sios-project/sios/backend"
	"github.com/sios-project/sios/backend/builtin"
	"github.com/sios-project/sios/brain"
	"github.com/sios-project/sios/consent"
	"github.com/sios-project/sios/fleet"
	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/ledger"
	"github.com/sios-project/sios/memory"
	"github.com/sios-project/sios/metrics"
	"github.com/sios-project/sios/oar"
	"github.com/sios-project/sios/policy"
	"github.com/sios-project/sios/ratelimit"
	"github.com/sios-project/sios/roles"
	"github.com/sios-project/sios/sso"
)

// Ledger appends audit records (ledger.Ledger).
type Ledger interface {
	Append(ctx context.Context, r *oar.Record) (*oar.Receipt, []byte, error)
	// Write returns once the record is durable, before its seal (its receipt) is.
	Write(ctx context.Context, r *oar.Record) (*ledger.Written, error)
	// Prepare encodes a record once, so that it can be named before WritePrepared
	// writes it.
	Prepare(r *oar.Record) (*ledger.Prepared, error)
	WritePrepared(ctx context.Context, pr *ledger.Prepared) (*ledger.Written, error)
	// Add queues the record, which it does not hurry, and calls then once it is
	// durable or cannot be (not if Add fails).
	Add(ctx context.Context, r *oar.Record, then func(error)) error
	// Size is the number of entries written (journaled) so far.
	Size() uint64
}

// Fleet is what remote invocation needs of the fleet (fleet.Fleet).
type Fleet interface {
	// Offered lists, by brain id, the peers offering each brain.
	Offered() map[string][]fleet.Peer
	// Candidates are the reachable peers offering a brain, best first.
	Candidates(brain string) []fleet.Peer
	// Invoke sends a remote call.
	Invoke(ctx context.Context, peer fleet.Peer, req *fleet.CallRequest) (*fleet.CallAnswer, error)
	// MemorySearch sends a governed memory search under a consent grant.
	MemorySearch(ctx context.Context, peer fleet.Peer, req *fleet.CallRequest) (*fleet.CallAnswer, error)
}

// Backends gives the client of the model server at a base URL.
type Backends interface {
	Get(baseURL string) (backend.Backend, error)
}

// Config is what a Pipeline is built from.
type Config struct {
	Identity   *identity.Node
	Ledger     Ledger
	Policy     *policy.Live
	Principals *policy.Principals
	Brains     *brain.Live
	Memory     *memory.Ops
	// Backends gives the client of a model server by base URL (backend.Pool).
	Backends Backends
	// Builtin is the offline backend.
	Builtin *builtin.Backend
	// OpenLog opens the node's own audit log for reading (the audit explainer).
	OpenLog func() (*ledger.Reader, error)
	// FleetLog holds the peers' verified identities.
	FleetLog *fleet.Log
	// Attestation is how this node's own key is held (fleet.AttestTPM when it is
	// sealed to a TPM), as the route table shows it; default software.
	Attestation string
	// Metrics counts requests and their latencies (nil: none).
	Metrics *metrics.Metrics
	// SSO validates OpenID Connect tokens (nil: API keys only).
	SSO *sso.Validator
	Log *slog.Logger
	// Consent is the node's grant store: the grants its principals made, which it
	// alone may use or release data under (nil: none can be made, and no principal's
	// data goes to another institution).
	Consent *consent.Store

	// DefaultBackend is "builtin" or the base URL of the node's default model server.
	DefaultBackend string
	// DefaultModel is the model for brains that name none on a network backend.
	DefaultModel string
	// EmbeddingModel is the embeddings model on the default backend ("": none).
	EmbeddingModel string
	// BackendAccreditation is the highest classification the model servers may receive.
	BackendAccreditation policy.Level
	// Accreditation is the node's own accreditation; zero when the operator set none.
	Accreditation policy.Level
	// Posture is the classification the node states to the fleet.
	Posture policy.Level
	// Models are the operator's statements about models on the model servers, by model
	// name (config "backend_models").
	Models map[string]ModelSettings
	// Started is when the node started (the creation time /v1/models reports).
	Started time.Time
	// Router routes "auto" by embedding similarity when the node has an embeddings
	// model (nil: lexically); the prompt goes to the embeddings backend only when its
	// data is at or below EmbedAccreditation.
	Router             *brain.Router
	EmbedAccreditation policy.Level

	// PrincipalPerMinute and PrincipalBurst bound each principal's requests.
	PrincipalPerMinute, PrincipalBurst int

	// Roles keeps the institution's chartered roles (nil: none; see roles.go).
	Roles *roles.Keeper
}

// Pipeline runs invocations. It is safe for concurrent use.
type Pipeline struct {
	cfg    Config
	limits *ratelimit.Limiter
	fleet  atomic.Pointer[fleetRef] // nil while the node runs alone
	bg     sync.WaitGroup           // completion records still being written
	auth   refusals
}

type fleetRef struct{ f Fleet }

// New builds a pipeline.
func New(cfg Config) *Pipeline {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	return &Pipeline{cfg: cfg, limits: ratelimit.New(time.Now)}
}

// SetFleet gives the pipeline the fleet, once membership has started (nil: alone).
func (p *Pipeline) SetFleet(f Fleet) {
	if f == nil {
		p.fleet.Store(nil)
		return
	}
	p.fleet.Store(&fleetRef{f})
}

func (p *Pipeline) fleetOf() Fleet {
	if r := p.fleet.Load(); r != nil {
		return r.f
	}
	return nil
}

// Wait waits for the completion records still being written.
func (p *Pipeline) Wait() { p.bg.Wait() }

// Chat runs one invocation through every stage and writes its answer to sink.
func (p *Pipeline) Chat(ctx context.Context, inv *Invocation, sink Sink) (err error) {
	defer func() { p.observeChat(inv, err) }()
	if err := p.resolve(ctx, inv); err != nil {
		return p.refuse(ctx, inv, err)
	}
	if err := p.authorise(inv); err != nil {
		return p.refuse(ctx, inv, err)
	}
	if err := p.admit(ctx, inv); err != nil {
		return err
	}
	if inv.remote != nil {
		return p.executeRemote(ctx, inv, sink)
	}
	return p.execute(ctx, inv, sink)
}

// observeChat counts a finished chat completion in the metrics.
func (p *Pipeline) observeChat(inv *Invocation, err error) {
	if p.cfg.Metrics == nil {
		return
	}
	brainID, kind := "", "model"
	switch {
	case inv.brain != nil:
		brainID = inv.brain.ID
	case inv.remote != nil:
		brainID, kind = inv.remote.brain.ID, "peer"
	}
	code := "ok"
	if err != nil {
		code = string(codeOf(err))
	}
	var total time.Duration
	if !inv.started.IsZero() {
		total = time.Since(inv.started)
	}
	p.cfg.Metrics.Chat(brainID, code, total, inv.waited, kind)
}

// record is the skeleton of a record of inv: who asked, for what, with which data.
// Every record of an invocation — its completion, tool calls and results as well as
// its admission — carries the classification of the data it was made with: each says
// as much about that data, and audit.read decides on it.
func (inv *Invocation) record(action string) *oar.Record {
	pr := inv.Principal
	rec := &oar.Record{Tenant: pr.Tenant, Actor: oar.Actor{ID: pr.ID, Clearance: pr.Clearance.String()}, Action: action}
	if inv.data.Valid() {
		rec.Classification = inv.data.String()
	}
	return rec
}

// prepare fills the members Append would and returns the record's hash, so that later
// records (and a peer's reply) can name it before it is durable.
func (p *Pipeline) prepare(rec *oar.Record) (string, error) {
	rec.V, rec.Kind, rec.Node = oar.Version, oar.KindRecord, p.cfg.Identity.ID()
	rec.Time = oar.FormatTime(time.Now())
	e, err := rec.Encode()
	if err != nil {
		return "", fmt.Errorf("audit record: %w", err)
	}
	return hex.EncodeToString(oar.RecordHash(e)), nil
}

// refuse makes the refusal's record durable, then returns the refusal carrying its
// receipt. The record is the admission record the request would have had, with the
// decision that refused it.
func (p *Pipeline) refuse(ctx context.Context, inv *Invocation, e *Error) error {
	rec := inv.admissionRecord()
	if inv.Peer != nil {
		// The reply to the peer names this record.
		if h, err := p.prepare(rec); err == nil {
			inv.Record = h
		}
	}
	rc, err := p.appendNow(ctx, rec)
	if err != nil {
		p.cfg.Log.Error("audit refusal", "err", err)
		return errorf(CodeAuditFailed, "the audit ledger could not record this request")
	}
	e.Receipt = rc
	return e
}

// writeNow writes a record and waits until it is durable, even if the caller has
// gone: what must hold before the act it records (a tool run, a release, a use of a
// grant). Its seal follows within the ledger's seal delay.
func (p *Pipeline) writeNow(ctx context.Context, rec *oar.Record) error {
	_, err := p.cfg.Ledger.Write(context.WithoutCancel(ctx), rec)
	return err
}

// appendNow appends a record and waits for its receipt, even if the caller has gone.
func (p *Pipeline) appendNow(ctx context.Context, rec *oar.Record) (*oar.Receipt, error) {
	rc, _, err := p.cfg.Ledger.Append(context.WithoutCancel(ctx), rec)
	return rc, err
}

// appendLater adds a record without waiting for it (Wait waits until it is durable).
// Nobody waits for its receipt, so it neither costs an fdatasync of its own nor hurries
// a seal: it goes into the journal with the next write.
func (p *Pipeline) appendLater(ctx context.Context, rec *oar.Record, what string) {
	p.bg.Add(1)
	err := p.cfg.Ledger.Add(context.WithoutCancel(ctx), rec, func(err error) {
		if err != nil {
			p.cfg.Log.Error(what, "resource", rec.Resource, "err", err)
		}
		p.bg.Done()
	})
	if err != nil {
		p.cfg.Log.Error(what, "resource", rec.Resource, "err", err)
		p.bg.Done()
	}
}

// Audit appends a record of the node's own (a refusal at the fleet's door, an egress
// refusal) and waits for it.
func (p *Pipeline) Audit(ctx context.Context, rec *oar.Record) (*oar.Receipt, error) {
	return p.appendNow(ctx, rec)
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
