// Package deliberate runs the decisions a node's principals ask of a panel of brains
// (package decision holds the formats, signatures and rules). One Service plays both
// parts:
//
//   - At the origin (Decide): the panel is resolved and the decision request sealed;
//     every member is authorised before anything is sent — the principal may use the
//     brain with this data, the data never flows to a brain, backend or peer
//     accredited below it, peer.send allows a remote member, and a member at another
//     institution is covered by a consent grant of the principal's (the question is
//     her data, as a remote call's messages are) — and the refusals are recorded with
//     the allowed members in the decision.request record, made durable with the
//     consent.use record of every grant used before any member is asked. BRAIN@* seats
//     are filled from the fleet's candidates. All members are asked at once, until the
//     deadline: local ones through the invocation pipeline, remote ones by a decision
//     call (CallPath) in a fed-call/1 envelope, or fed-call/2 carrying the grant. The
//     ballots are counted (decision.Count), the outcome sealed and recorded in
//     decision.outcome with every ballot's exact signed bytes.
//   - At a contributor, local or remote alike (Contribute): the request is verified
//     (and, from another institution, the grant it comes under), the brain runs through
//     the pipeline with a structured-output request, its answer is read into a ballot
//     (an abstention when it does not parse), signed with the node's keys and recorded
//     in decision.ballot, and returned with its receipt.
//
// Guarantees: no member is asked before the request record is durable; a member the
// principal may not use, one accredited below the data, or one at another institution
// that no usable grant of hers covers, is never asked; each grant's use is on disk and
// recorded before the question goes under it; a ballot counts only after its signature
// verifies under its node's enrolled keys; the outcome is a pure function of the
// ballots received by the deadline.
package deliberate

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sios-project/sios/brain"
	"github.com/sios-project/sios/decision"
	"github.com/sios-project/sios/fleet"
	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/invoke"
	"github.com/sios-project/sios/ledger"
	"github.com/sios-project/sios/oar"
)

// Ledger appends audit records (ledger.Ledger).
type Ledger interface {
	Append(ctx context.Context, r *oar.Record) (*oar.Receipt, []byte, error)
}

// Fleet is what a decision needs of the fleet (fleet.Fleet): the peers that may fill a
// seat, and the fleet API's mutual TLS to ask them.
type Fleet interface {
	// Candidates are the reachable peers offering a brain, best first.
	Candidates(brain string) []fleet.Peer
	// Peer is what this node knows of one peer.
	Peer(node string) (fleet.Peer, bool)
	// Post sends a request to a peer's fleet API; the caller closes the answer's body.
	Post(ctx context.Context, node, addr, path string, body []byte) (*http.Response, error)
}

// Config is what a Service is built from.
type Config struct {
	Identity *identity.Node
	// Pipeline runs members' brains and makes the policy decisions about members.
	Pipeline *invoke.Pipeline
	Ledger   Ledger
	Brains   *brain.Live
	// Panels are the panels of DIR/panels (decision.LoadPanels).
	Panels *decision.Panels
	// FleetLog holds the peers' verified identities (their keys and institutions).
	FleetLog *fleet.Log
	// OpenLog opens this node's audit log for reading (decisions older than those kept).
	OpenLog func() (*ledger.Reader, error)
	Log     *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Service runs decisions at the origin and contributions at a member's node. It is
// safe for concurrent use.
type Service struct {
	cfg      Config
	fleet    atomic.Pointer[fleetRef] // nil while the node runs alone
	answered *answered

	mu   sync.Mutex
	kept map[string]*kept // guarded by mu; recent decisions by id
	fifo []string         // guarded by mu; their ids, oldest first
}

type fleetRef struct{ f Fleet }

// New builds a Service.
func New(cfg Config) *Service {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Panels == nil {
		cfg.Panels, _ = decision.LoadPanels("", nil)
	}
	return &Service{cfg: cfg, answered: newAnswered(MaxAnswered), kept: map[string]*kept{}}
}

// SetFleet gives the service the fleet once membership has started (nil: alone).
func (s *Service) SetFleet(f Fleet) {
	if f == nil {
		s.fleet.Store(nil)
		return
	}
	s.fleet.Store(&fleetRef{f})
}

func (s *Service) fleetOf() Fleet {
	if r := s.fleet.Load(); r != nil {
		return r.f
	}
	return nil
}

// Panels lists the ids of the panels of DIR/panels.
func (s *Service) Panels() []string { return s.cfg.Panels.IDs() }

// directory is decision.Directory over this node and the fleet log: a node's enrolled
// keys and its institution (the root of its enrolment certificate).
func (s *Service) directory(node string) (decision.Contributor, bool) {
	id := s.cfg.Identity
	if node == id.ID() {
		return decision.Contributor{Key: id.Public(), Institution: id.Cert.RootID}, true
	}
	key, ok := s.cfg.FleetLog.Key(node)
	if !ok {
		return decision.Contributor{}, false
	}
	v, _ := s.cfg.FleetLog.NodeView(node)
	return decision.Contributor{Key: key, Institution: v.Institution}, true
}

// answered remembers the (decision, brain) pairs a contributor has answered, each until
// its decision's deadline, so that no brain answers one decision twice.
type answered struct {
	mu    sync.Mutex
	until map[[2]string]time.Time // guarded by mu
	max   int
}

func newAnswered(max int) *answered { return &answered{until: map[[2]string]time.Time{}, max: max} }

// take marks (decision, brain) answered until deadline; false if it already was, or
// if MaxAnswered pairs are held.
func (a *answered) take(decisionHash, brainID string, deadline, now time.Time) (ok bool, full bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	k := [2]string{decisionHash, brainID}
	if t, seen := a.until[k]; seen && t.After(now) {
		return false, false
	}
	if len(a.until) >= a.max {
		for k, t := range a.until {
			if !t.After(now) {
				delete(a.until, k)
			}
		}
		if len(a.until) >= a.max {
			return false, true
		}
	}
	a.until[k] = deadline
	return true, false
}
