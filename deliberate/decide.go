package deliberate

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/sios-project/sios/consent"
	"github.com/sios-project/sios/decision"
	"github.com/sios-project/sios/fleet"
	"github.com/sios-project/sios/invoke"
	"github.com/sios-project/sios/oar"
	"github.com/sios-project/sios/policy"
)

// Ask is a decision a principal asks of a panel.
type Ask struct {
	Question string
	Options  []string
	// PanelID names a panel of DIR/panels; Panel gives one inline. Exactly one is set.
	PanelID string
	Panel   *decision.Panel
	// Rule, when set, replaces the panel's rule (a panel file's, else plurality).
	Rule *decision.Rule
	// Deadline is how long the members have (0: DefaultDeadline).
	Deadline time.Duration
	// Classification of the question ("": OFFICIAL).
	Classification string
}

// seat is one member of a decision as the origin plans to ask it.
type seat struct {
	member   string
	brain    string
	node     string      // the node asked; "" when nobody is
	peer     *fleet.Peer // nil for this node's own brain
	allowed  bool
	policies []string // the policies that allowed or refused it
	reason   string   // why it is not asked
	code     string   // the refusal's code, when a consent grant is missing or may not be used
	// grant is the principal's consent grant the question goes under to a peer of
	// another institution: as found in plan, then as used (useGrants); nil otherwise.
	grant *consent.Entry
	use   string // the hash of the consent.use record of that use
}

// Decide runs one decision: the request is sealed, every member authorised and the
// request recorded before any member is asked; the members are asked at once until
// the deadline, and the ballots that came are counted into the outcome, which is
// sealed and recorded. The result says what every member did. A request that does not
// validate, or one of whose members none may be asked, is refused with an
// *invoke.Error (the latter with the receipt of its decision.request record).
func (s *Service) Decide(ctx context.Context, pr *policy.Principal, ask Ask) (*Result, error) {
	started := s.cfg.Now()
	draft, level, err := s.draft(ask, started)
	if err != nil {
		return nil, err
	}
	id := s.cfg.Identity
	raw, err := decision.SealRequest(id.Key, *draft)
	if err != nil {
		return nil, &invoke.Error{Code: invoke.CodeInvalidRequest, Message: err.Error()}
	}
	req, err := decision.ParseRequest(raw)
	if err != nil {
		return nil, fmt.Errorf("decision request sealed but does not parse: %w", err)
	}
	seats := s.plan(pr, req, level)
	uses, err := s.useGrants(pr, req, level, seats)
	if err != nil {
		return nil, err
	}

	// The request record, and the consent.use record of every grant a member is asked
	// under, are durable before any member is asked.
	reqRec := s.requestRecord(pr, req, len(ask.Question), seats)
	rc, err := s.appendTogether(ctx, reqRec, uses)
	if err != nil {
		s.cfg.Log.Error("decision request record", "decision", req.Hash(), "err", err)
		return nil, &invoke.Error{Code: invoke.CodeAuditFailed, Message: "the audit ledger could not record this decision, so no member was asked"}
	}
	if reqRec.Decision.Effect == "deny" {
		// Refused for want of consent alone, the decision says so with the first
		// member's code, as a remote call does.
		code := invoke.Code(seats[0].code)
		var why []string
		for _, st := range seats {
			why = append(why, st.member+": "+st.reason)
			if st.code == "" {
				code = invoke.CodePolicyDenied
			}
		}
		return nil, &invoke.Error{Code: code, Receipt: rc,
			Message: "no member of the panel may be asked: " + strings.Join(why, "; ")}
	}

	asking := s.cfg.Now()
	replies := s.gather(ctx, pr, req, ask.Question, seats)
	lastBallot := asking
	var ballots []decision.SignedBallot
	for _, r := range replies {
		if r.c != nil {
			ballots = append(ballots, decision.SignedBallot{Bytes: r.c.Ballot, Rationale: r.c.Rationale, Received: r.received,
				Node: r.seat.node, Brain: r.seat.brain})
			if r.received.After(lastBallot) {
				lastBallot = r.received
			}
		}
	}
	counted := s.cfg.Now()
	o, err := decision.Count(req, ballots, s.directory, counted)
	if err != nil {
		return nil, err
	}
	signed, err := decision.SealOutcome(id.Key, o)
	if err != nil {
		return nil, fmt.Errorf("seal outcome: %w", err)
	}
	outRec := s.outcomeRecord(pr, req, len(ask.Question), reqRec, rc.RecordHash, signed, o, replies)
	orc, _, err := s.cfg.Ledger.Append(context.WithoutCancel(ctx), outRec)
	if err != nil {
		s.cfg.Log.Error("decision outcome record", "decision", req.Hash(), "err", err)
		return nil, &invoke.Error{Code: invoke.CodeAuditFailed, Message: "the audit ledger could not record the decision's outcome"}
	}
	res := s.result(req, o, seats, replies, orc)
	done := s.cfg.Now()
	res.Timing = &Timing{TotalMS: msBetween(started, done), MembersMS: msBetween(asking, lastBallot), OverheadMS: msBetween(started, done) - msBetween(asking, lastBallot)}
	s.keep(res, pr.Tenant, req.Classification)
	return res, nil
}

// draft checks an Ask and makes the unsigned request.
func (s *Service) draft(ask Ask, now time.Time) (*decision.Request, policy.Level, error) {
	invalid := func(param, format string, a ...any) error {
		return &invoke.Error{Code: invoke.CodeInvalidRequest, Param: param, Message: fmt.Sprintf(format, a...)}
	}
	class := ask.Classification
	if class == "" {
		class = policy.Official.String()
	}
	level, err := policy.ParseLevel(class)
	if err != nil {
		return nil, 0, &invoke.Error{Code: invoke.CodeInvalidClassification, Param: "classification", Message: err.Error()}
	}
	switch {
	case strings.TrimSpace(ask.Question) == "":
		return nil, 0, invalid("question", "question is required")
	case len(ask.Question) > decision.MaxQuestionLen:
		return nil, 0, invalid("question", "question is %d bytes, more than %d (decision.MaxQuestionLen)", len(ask.Question), decision.MaxQuestionLen)
	case !utf8.ValidString(ask.Question):
		return nil, 0, invalid("question", "question is not valid UTF-8")
	}
	if err := decision.CheckOptions(ask.Options); err != nil {
		return nil, 0, invalid("options", "%v", err)
	}
	var panel decision.Panel
	rule := decision.Rule{Name: decision.RulePlurality}
	switch {
	case ask.PanelID != "" && ask.Panel != nil:
		return nil, 0, invalid("panel", "give a panel's name or a panel, not both")
	case ask.PanelID != "":
		def, ok := s.cfg.Panels.Get(ask.PanelID)
		if !ok {
			names := s.cfg.Panels.IDs()
			if len(names) == 0 {
				names = []string{"none: add panel files to DIR/panels"}
			}
			return nil, 0, &invoke.Error{Code: invoke.CodePanelNotFound, Param: "panel",
				Message: fmt.Sprintf("no panel %q; this node's panels: %s", ask.PanelID, strings.Join(names, ", "))}
		}
		panel, rule = def.Panel, def.Rule
	case ask.Panel != nil:
		panel = *ask.Panel
		if err := panel.Validate(); err != nil {
			return nil, 0, invalid("panel", "panel.%v", err)
		}
		if err := panel.CheckBrains(s.cfg.Brains); err != nil {
			return nil, 0, invalid("panel", "panel.%v", err)
		}
	default:
		return nil, 0, invalid("panel", "a decision needs a panel: a panel's name, or its members")
	}
	if ask.Rule != nil {
		rule = *ask.Rule
	}
	if err := rule.Validate(&panel); err != nil {
		return nil, 0, invalid("rule", "rule.%v", err)
	}
	d := ask.Deadline
	if d == 0 {
		d = DefaultDeadline
	}
	if d < MinDeadline || d > decision.MaxDecisionLifetime {
		return nil, 0, invalid("deadline", "deadline %s is outside %s to %s (decision.MaxDecisionLifetime)", d, MinDeadline, decision.MaxDecisionLifetime)
	}
	return &decision.Request{
		Origin: s.cfg.Identity.ID(), Issued: oar.FormatTime(now), Deadline: oar.FormatTime(now.Add(d)),
		Classification: level.String(), QuestionDigest: decision.QuestionDigest(ask.Question),
		Options: ask.Options, Rule: rule, Panel: panel.ForRule(rule),
	}, level, nil
}

// plan decides, for every member, who is asked: this node's brain if the principal may
// use it with this data; a peer's if policy lets the data go to that peer for that
// brain — and, for a peer of another institution, only under a consent grant of the
// principal's that covers that brain there (as a remote call of the brain would be);
// for BRAIN@*, of the peers offering it that policy allows, the one first in the order
// Count fills such a seat by (decision.Count, step 3), so that the seat goes to a peer
// no peer could choose before the request existed.
func (s *Service) plan(pr *policy.Principal, req *decision.Request, level policy.Level) []*seat {
	f := s.fleetOf()
	seats := make([]*seat, len(req.Panel.Members))
	for i, m := range req.Panel.Members {
		mem, _ := decision.ParseMember(m) // the request parsed
		st := &seat{member: m, brain: mem.Brain}
		seats[i] = st
		switch {
		case mem.Local():
			d, ok := s.cfg.Pipeline.MayInvoke(pr, mem.Brain, level)
			if !ok {
				st.reason = "this node has no such brain"
				continue
			}
			st.node, st.allowed, st.policies = s.cfg.Identity.ID(), d.Allow, d.Reasons
			if !d.Allow {
				st.reason = invoke.DenialReason(d)
			}
		case f == nil:
			st.reason = "this node runs without a fleet"
		case mem.Node != decision.AnyNode:
			peer, ok := f.Peer(mem.Node)
			switch {
			case !ok:
				st.reason = "the node is not a member of this node's fleet"
				continue
			case peer.State == fleet.StateDead || peer.Forked:
				st.reason = fmt.Sprintf("the node is %s", stateOf(peer))
				continue
			}
			b, ok := offered(peer, mem.Brain)
			if !ok {
				st.reason = "the node does not offer the brain"
				continue
			}
			st.node = peer.NodeID
			g, e := s.grantFor(pr, b, peer, level)
			if e != nil {
				st.refuse(e)
				continue
			}
			d := s.cfg.Pipeline.MaySend(pr, b, peer, level, g)
			st.peer, st.allowed, st.policies, st.grant = &peer, d.Allow, d.Reasons, g
			if !d.Allow {
				st.reason = invoke.DenialReason(d)
			}
		default:
			s.fillAny(pr, req, level, f, st)
		}
	}
	return seats
}

// fillAny fills a BRAIN@* seat (see plan).
func (s *Service) fillAny(pr *policy.Principal, req *decision.Request, level policy.Level, f Fleet, st *seat) {
	var denied *policy.Decision
	var missing *invoke.Error // why no grant covers the first peer of another institution
	var allowed []fleet.Peer
	policies := map[string][]string{}
	grants := map[string]*consent.Entry{}
	for _, peer := range f.Candidates(st.brain) {
		if peer.NodeID == s.cfg.Identity.ID() {
			continue
		}
		b, ok := offered(peer, st.brain)
		if !ok {
			continue
		}
		g, e := s.grantFor(pr, b, peer, level)
		if e != nil {
			if missing == nil {
				missing = e
			}
			continue
		}
		d := s.cfg.Pipeline.MaySend(pr, b, peer, level, g)
		if !d.Allow {
			if denied == nil {
				denied = &d
			}
			continue
		}
		allowed, policies[peer.NodeID], grants[peer.NodeID] = append(allowed, peer), d.Reasons, g
	}
	switch {
	case len(allowed) > 0:
		best := firstToFill(req.Hash(), allowed)
		st.node, st.peer, st.allowed, st.policies, st.grant = best.NodeID, &best, true, policies[best.NodeID], grants[best.NodeID]
	case denied != nil:
		st.policies, st.reason = denied.Reasons, "no peer offering the brain may receive this data: "+invoke.DenialReason(*denied)
	case missing != nil:
		st.refuse(missing)
	default:
		st.reason = "no reachable peer offers the brain"
	}
}

// grantFor is the principal's consent grant that lets the question go to brain b at
// peer: none needed (nil, nil) for a peer of this node's institution; for one of another
// institution, the grant the pipeline finds for a remote call of b there, or the
// consent_required refusal saying what is missing.
func (s *Service) grantFor(pr *policy.Principal, b fleet.Brain, peer fleet.Peer, level policy.Level) (*consent.Entry, *invoke.Error) {
	if peer.Institution == s.cfg.Identity.Cert.RootID {
		return nil, nil
	}
	return s.cfg.Pipeline.MemberGrant(pr, b.ID, peer, level)
}

// refuse marks the seat refused for want of a consent grant it may use.
func (st *seat) refuse(e *invoke.Error) {
	st.allowed, st.grant = false, nil
	st.policies, st.code, st.reason = []string{"consent"}, string(e.Code), string(e.Code)+": "+e.Message
}

// useGrants consumes one use of the consent grant of every seat asked under one (on
// disk when it returns) and returns the consent.use records of those uses, for the
// ledger. A grant revoked, expired or used up since plan found it refuses its seat with
// its code; any other failure stops the decision, with nothing sent.
func (s *Service) useGrants(pr *policy.Principal, req *decision.Request, level policy.Level, seats []*seat) ([]*oar.Record, error) {
	var recs []*oar.Record
	for _, st := range seats {
		if !st.allowed || st.grant == nil {
			continue
		}
		en, rec, h, err := s.cfg.Pipeline.UseMemberGrant(pr, st.grant, st.node, st.brain, req.Hash(), level)
		var e *invoke.Error
		switch {
		case err == nil:
			st.grant, st.use = en, h
			recs = append(recs, rec)
		case errors.As(err, &e) && strings.HasPrefix(string(e.Code), "consent_"):
			st.refuse(e)
		default:
			s.cfg.Log.Error("decision: consent use", "decision", req.Hash(), "member", st.member, "err", err)
			return nil, &invoke.Error{Code: invoke.CodeInternal, Message: "the use of a consent grant could not be recorded, so no member was asked"}
		}
	}
	return recs, nil
}

// appendTogether appends the request record and the consent.use records it links to at
// once, so that they share one seal, and returns the request record's receipt when all
// are durable; an error if any is not (then nothing may be sent).
func (s *Service) appendTogether(ctx context.Context, reqRec *oar.Record, uses []*oar.Record) (*oar.Receipt, error) {
	errs := make([]error, len(uses))
	var wg sync.WaitGroup
	for i, rec := range uses {
		wg.Go(func() { _, _, errs[i] = s.cfg.Ledger.Append(context.WithoutCancel(ctx), rec) })
	}
	rc, _, err := s.cfg.Ledger.Append(context.WithoutCancel(ctx), reqRec)
	wg.Wait()
	return rc, errors.Join(append(errs, err)...)
}

// firstToFill is, of the peers that may fill a BRAIN@* seat, the one whose ballot
// Count would keep if they all answered: the lowest rendezvous hash.
func firstToFill(decisionHash string, peers []fleet.Peer) fleet.Peer {
	best := peers[0]
	for _, p := range peers[1:] {
		if rendezvous(decisionHash, p.NodeID) < rendezvous(decisionHash, best.NodeID) {
			best = p
		}
	}
	return best
}

// rendezvous is docs/decisions.md section 6, step 3: hex(SHA-256(decision hash || node)).
func rendezvous(decisionHash, node string) string {
	s := sha256.Sum256([]byte(decisionHash + node))
	return hex.EncodeToString(s[:])
}

func offered(p fleet.Peer, id string) (fleet.Brain, bool) {
	for _, b := range p.Brains {
		if b.ID == id {
			return b, true
		}
	}
	return fleet.Brain{}, false
}

func stateOf(p fleet.Peer) string {
	if p.Forked {
		return "forked"
	}
	return p.State
}

// gather asks every allowed member at once and returns their replies when all have
// answered or the deadline has passed, whichever is first, in the panel's order. The
// decision runs to its end even if the caller goes away: its records must be whole.
func (s *Service) gather(ctx context.Context, pr *policy.Principal, req *decision.Request, question string, seats []*seat) []reply {
	deadline, _ := time.Parse(time.RFC3339Nano, req.Deadline)
	dctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), deadline)
	defer cancel()
	ch := make(chan reply, len(seats))
	asked := 0
	for _, st := range seats {
		if st.allowed {
			asked++
			go func() { ch <- s.ask(dctx, pr, req, question, st) }()
		}
	}
	got := map[*seat]reply{}
	for len(got) < asked {
		select {
		case r := <-ch:
			got[r.seat] = r
		case <-dctx.Done():
			asked = len(got)
		}
	}
	out := make([]reply, 0, len(seats))
	for _, st := range seats {
		if r, ok := got[st]; ok {
			out = append(out, r)
		} else if st.allowed {
			out = append(out, reply{seat: st, err: "no answer by the deadline"})
		}
	}
	return out
}

// requestRecord is the decision.request record: the signed request, and what became
// of each member before anything was sent.
func (s *Service) requestRecord(pr *policy.Principal, req *decision.Request, questionLen int, seats []*seat) *oar.Record {
	var members []memberDetail
	var allowed, denied []string
	var links []oar.Link
	for _, st := range seats {
		md := memberDetail{Member: st.member, Node: st.node, Effect: "deny", Policies: st.policies, Reason: st.reason, Code: st.code}
		if st.allowed {
			md.Effect, md.Reason = "allow", ""
			allowed = append(allowed, st.policies...)
			if st.grant != nil {
				md.Consent = &grantRef{Grant: st.grant.Grant.ID, GrantHash: consent.Hash(st.grant.Raw)}
				links = append(links, oar.Link{Rel: "consent", RecordHash: st.use})
			}
		} else {
			denied = append(denied, st.policies...)
		}
		members = append(members, md)
	}
	d := &oar.Decision{Effect: "allow", Policies: unique(allowed)}
	if !slices.ContainsFunc(seats, func(st *seat) bool { return st.allowed }) {
		d = &oar.Decision{Effect: "deny", Policies: unique(denied)}
	}
	return &oar.Record{
		Tenant: pr.Tenant, Actor: oar.Actor{ID: pr.ID, Clearance: pr.Clearance.String()},
		Action: oar.ActionDecisionRequest, Resource: "decision/" + req.Hash(), Classification: req.Classification,
		Decision: d,
		Inputs:   []oar.Digest{{Name: "question", SHA256: req.QuestionDigest, Size: int64(questionLen)}},
		Links:    links,
		Parties:  []json.RawMessage{req.Bytes()},
		Detail:   mustJSON(requestDetail{Decision: req.Hash(), Panel: req.Panel.ID, Members: members}),
	}
}

type requestDetail struct {
	Decision string         `json:"decision"`
	Panel    string         `json:"panel,omitempty"`
	Members  []memberDetail `json:"members"`
}

type memberDetail struct {
	Member   string   `json:"member"`
	Node     string   `json:"node,omitempty"`
	Effect   string   `json:"effect"`
	Policies []string `json:"policies,omitempty"`
	Reason   string   `json:"reason,omitempty"`
	// Code is a refusal's code when a consent grant was missing or could not be used.
	Code string `json:"code,omitempty"`
	// Consent names the grant a member of another institution is asked under.
	Consent *grantRef `json:"consent,omitempty"`
}

// grantRef names a consent grant, as the pipeline's records do: its id and hash.
type grantRef struct {
	Grant     string `json:"grant"`
	GrantHash string `json:"grant_hash"`
}

// outcomeRecord is the decision.outcome record: the signed outcome, linked to the
// request record and to the record of every counted ballot, wherever it is kept.
func (s *Service) outcomeRecord(pr *policy.Principal, req *decision.Request, questionLen int, reqRec *oar.Record, reqHash string,
	signed []byte, o *decision.Outcome, replies []reply) *oar.Record {
	byBallot := ballotsByDigest(replies)
	links := []oar.Link{{Rel: "request", RecordHash: reqHash}}
	var where []BallotRecord
	for _, c := range o.Counted {
		r, ok := byBallot[sha256Hex(c.Bytes)]
		if !ok || r.c.Receipt == nil {
			continue
		}
		links = append(links, oar.Link{Rel: "ballot", RecordHash: r.c.Receipt.RecordHash})
		where = append(where, BallotRecord{Node: c.Ballot.Node, Brain: c.Ballot.Brain, Index: r.c.Receipt.Index, RecordHash: r.c.Receipt.RecordHash})
	}
	var unanswered []memberDetail
	for _, r := range replies {
		if r.c == nil {
			unanswered = append(unanswered, memberDetail{Member: r.seat.member, Node: r.seat.node, Reason: r.err})
		}
	}
	return &oar.Record{
		Tenant: pr.Tenant, Actor: oar.Actor{ID: pr.ID, Clearance: pr.Clearance.String()},
		Action: oar.ActionDecisionOutcome, Resource: "decision/" + req.Hash(), Classification: req.Classification,
		Decision: reqRec.Decision,
		Inputs:   []oar.Digest{{Name: "question", SHA256: req.QuestionDigest, Size: int64(questionLen)}},
		Outputs:  []oar.Digest{oar.DigestOf("outcome", signed)},
		Links:    links,
		Parties:  []json.RawMessage{signed},
		Detail: mustJSON(OutcomeDetail{Decision: req.Hash(), Rule: o.Rule, Status: o.Status, Outcome: o.Result,
			Ballots: where, Unanswered: unanswered}),
	}
}

// OutcomeDetail is the detail of a decision.outcome record.
type OutcomeDetail struct {
	Decision string  `json:"decision"`
	Rule     string  `json:"rule"`
	Status   string  `json:"status"`
	Outcome  *string `json:"outcome"`
	// Ballots say where each counted ballot is recorded: on its node's log, at an index.
	Ballots []BallotRecord `json:"ballots,omitempty"`
	// Unanswered are the members asked that gave no ballot, and why.
	Unanswered []memberDetail `json:"unanswered,omitempty"`
}

// BallotRecord locates a counted ballot's decision.ballot record.
type BallotRecord struct {
	Node       string `json:"node"`
	Brain      string `json:"brain"`
	Index      uint64 `json:"index"`
	RecordHash string `json:"record_hash"`
}

func ballotsByDigest(replies []reply) map[string]reply {
	out := map[string]reply{}
	for _, r := range replies {
		if r.c != nil {
			out[sha256Hex(r.c.Ballot)] = r
		}
	}
	return out
}

func unique(ss []string) []string {
	if len(ss) == 0 {
		return nil
	}
	out := slices.Clone(ss)
	slices.Sort(out)
	return slices.Compact(out)
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func msBetween(a, b time.Time) float64 { return float64(b.Sub(a).Microseconds()) / 1000 }
