package deliberate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/sios-project/sios/decision"
	"github.com/sios-project/sios/invoke"
	"github.com/sios-project/sios/oar"
	"github.com/sios-project/sios/policy"
)

// Result is a decision as POST /v1/decisions and GET /v1/decisions/ID answer it, and as
// 'sios decide --json' prints it (docs/decisions.md, "API and CLI").
type Result struct {
	DecisionID  string         `json:"decision_id"`
	Status      string         `json:"status"`  // decision.StatusDecided, StatusTie or StatusNoQuorum
	Outcome     *string        `json:"outcome"` // the option decided, or null
	Rule        string         `json:"rule"`
	Tally       map[string]int `json:"tally"` // option → votes (weight under the weighted rule)
	Abstentions int            `json:"abstentions"`
	Vetoed      []string       `json:"vetoed,omitempty"`
	Unmet       []string       `json:"unmet,omitempty"`
	Ballots     []BallotView   `json:"ballots"`
	Rejected    []RejectedView `json:"rejected"`
	Absent      []AbsentView   `json:"absent"`
	Panel       string         `json:"panel,omitempty"`
	// Classification is the question's.
	Classification string `json:"classification"`
	// Record locates the decision.outcome record in this node's log.
	Record  RecordRef    `json:"record"`
	Receipt *oar.Receipt `json:"receipt,omitempty"` // of that record
	// Timing is how the decision spent its time (only when it was just made).
	Timing *Timing `json:"timing,omitempty"`
}

// BallotView is one counted ballot.
type BallotView struct {
	Node        string  `json:"node"`
	Institution string  `json:"institution"`
	Brain       string  `json:"brain"`
	Seat        string  `json:"seat"`
	Model       string  `json:"model"`
	Choice      string  `json:"choice"`
	Confidence  float64 `json:"confidence"`
	Abstention  string  `json:"abstention,omitempty"`
	// Rationale travels beside the ballot, which holds its digest; a decision read
	// back from the audit log has none (the log keeps digests, never text).
	Rationale string `json:"rationale"`
	// RecordHash and Receipt are of the contributor's own decision.ballot record.
	RecordHash string       `json:"record_hash"`
	Receipt    *oar.Receipt `json:"receipt"`
}

// RejectedView is a ballot received and not counted.
type RejectedView struct {
	Node   string `json:"node"`
	Brain  string `json:"brain"`
	Reason string `json:"reason"` // decision.ReasonBadSignature, …
	Detail string `json:"detail,omitempty"`
}

// AbsentView is a member without a counted ballot.
type AbsentView struct {
	Member string `json:"member"`
	Node   string `json:"node"` // "*" for a BRAIN@* seat nobody was asked to fill
	Brain  string `json:"brain"`
	Reason string `json:"reason,omitempty"`
}

// RecordRef locates a record in a node's log.
type RecordRef struct {
	Index      uint64 `json:"index"`
	RecordHash string `json:"record_hash"`
}

// Timing is where a decision's time went, in milliseconds: TotalMS from the request to
// the outcome's record, MembersMS from asking the members to the last ballot's
// arrival, OverheadMS the difference (the origin's own work).
type Timing struct {
	TotalMS    float64 `json:"total_ms"`
	MembersMS  float64 `json:"members_ms"`
	OverheadMS float64 `json:"overhead_ms"`
}

// result builds the Result of a decision just made.
func (s *Service) result(req *decision.Request, o *decision.Outcome, seats []*seat, replies []reply, rc *oar.Receipt) *Result {
	res := baseResult(req, o, rc)
	byBallot := ballotsByDigest(replies)
	for _, c := range o.Counted {
		v := ballotView(c)
		if r, ok := byBallot[sha256Hex(c.Bytes)]; ok && r.c.Receipt != nil {
			v.RecordHash, v.Receipt = r.c.Receipt.RecordHash, r.c.Receipt
		}
		res.Ballots = append(res.Ballots, v)
	}
	why := map[string]string{}
	for _, st := range seats {
		if st.reason != "" {
			why[st.member] = "not asked: " + st.reason
		}
	}
	for _, r := range replies {
		switch {
		case r.c == nil:
			why[r.seat.member] = r.err
		default:
			for _, j := range o.Rejected {
				if j.BallotSHA256 == sha256Hex(r.c.Ballot) {
					why[r.seat.member] = "its ballot was rejected: " + j.Reason
				}
			}
		}
	}
	asked := map[string]string{}
	for _, st := range seats {
		asked[st.member] = st.node
	}
	for i := range res.Absent {
		a := &res.Absent[i]
		if a.Node == decision.AnyNode && asked[a.Member] != "" {
			a.Node = asked[a.Member]
		}
		a.Reason = why[a.Member]
	}
	return res
}

// baseResult is what an outcome says by itself.
func baseResult(req *decision.Request, o *decision.Outcome, rc *oar.Receipt) *Result {
	res := &Result{DecisionID: o.Decision, Status: o.Status, Outcome: o.Result, Rule: o.Rule, Tally: o.Tally,
		Abstentions: o.Abstentions, Vetoed: o.Vetoed, Unmet: o.Unmet, Panel: req.Panel.ID, Classification: req.Classification,
		Ballots: []BallotView{}, Rejected: []RejectedView{}, Absent: []AbsentView{}}
	if rc != nil {
		res.Record, res.Receipt = RecordRef{Index: rc.Index, RecordHash: rc.RecordHash}, rc
	}
	for _, j := range o.Rejected {
		res.Rejected = append(res.Rejected, RejectedView{Node: j.Node, Brain: j.Brain, Reason: j.Reason, Detail: j.Detail})
	}
	for _, m := range o.Absent {
		mem, _ := decision.ParseMember(m)
		node := mem.Node
		if mem.Local() {
			node = req.Origin
		}
		res.Absent = append(res.Absent, AbsentView{Member: m, Node: node, Brain: mem.Brain})
	}
	return res
}

func ballotView(c decision.Counted) BallotView {
	b := c.Ballot
	return BallotView{Node: b.Node, Institution: c.Institution, Brain: b.Brain, Seat: c.Seat, Model: b.Model, Choice: b.Choice,
		Confidence: b.Confidence.Float(), Abstention: b.Abstention, Rationale: c.Rationale}
}

// kept is a decision kept in memory for GET /v1/decisions/ID.
type kept struct {
	res           *Result
	tenant, class string
	index         uint64
}

func (s *Service) keep(res *Result, tenant, class string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.kept[res.DecisionID]; ok {
		return
	}
	if len(s.fifo) >= MaxKept {
		delete(s.kept, s.fifo[0])
		s.fifo = s.fifo[1:]
	}
	s.kept[res.DecisionID] = &kept{res: res, tenant: tenant, class: class, index: res.Record.Index}
	s.fifo = append(s.fifo, res.DecisionID)
}

// Get returns a decision made on this node, if pr may read its outcome record (Cedar
// audit.read: in pr's tenant, at or below its clearance). A decision too old to be kept
// in memory is read back from the audit log, without its rationales. A decision pr may
// not read is answered as one that does not exist.
func (s *Service) Get(ctx context.Context, pr *policy.Principal, id string) (*Result, error) {
	notFound := &invoke.Error{Code: invoke.CodeDecisionNotFound, Message: fmt.Sprintf("no decision %s that you may read on this node", cut(id, 80))}
	if len(id) != 64 || strings.Trim(id, "0123456789abcdef") != "" {
		return nil, &invoke.Error{Code: invoke.CodeInvalidRequest, Param: "id", Message: "a decision id is 64 lowercase hex digits (the decision request's hash)"}
	}
	s.mu.Lock()
	k := s.kept[id]
	s.mu.Unlock()
	if k != nil {
		rec := &oar.Record{Tenant: k.tenant, Classification: k.class}
		if !s.cfg.Pipeline.MayReadRecord(pr, k.index, rec) {
			return nil, notFound
		}
		c := *k.res
		c.Timing = nil
		return &c, nil
	}
	res, idx, rec, err := s.readBack(ctx, id)
	if err != nil {
		if errors.Is(err, errNoDecision) {
			return nil, notFound
		}
		return nil, err
	}
	if !s.cfg.Pipeline.MayReadRecord(pr, idx, rec) {
		return nil, notFound
	}
	return res, nil
}

var errNoDecision = errors.New("no such decision")

// readBack finds a decision's outcome record in this node's log, newest first, and
// rebuilds its Result from the record.
func (s *Service) readBack(ctx context.Context, id string) (*Result, uint64, *oar.Record, error) {
	if s.cfg.OpenLog == nil {
		return nil, 0, nil, errNoDecision
	}
	r, err := s.cfg.OpenLog()
	if err != nil {
		return nil, 0, nil, errNoDecision // nothing checkpointed yet
	}
	const chunk = 256
	for end := r.Size(); end > 0; {
		from := end - min(end, chunk)
		entries, err := r.Entries(ctx, from, end)
		if err != nil {
			return nil, 0, nil, fmt.Errorf("reading the audit log: %w", err)
		}
		for i := len(entries) - 1; i >= 0; i-- {
			e, err := oar.Parse(entries[i])
			if err != nil || e.Record == nil || e.Record.Action != oar.ActionDecisionOutcome || e.Record.Resource != "decision/"+id || len(e.Record.Parties) == 0 {
				continue
			}
			idx := from + uint64(i)
			o, err := decision.VerifyOutcome(e.Record.Parties[0], s.directory)
			if err != nil {
				return nil, 0, nil, fmt.Errorf("decision %s: its outcome record %d does not verify: %w", id, idx, err)
			}
			rc, _ := r.Receipt(ctx, idx)
			if rc == nil {
				rc = &oar.Receipt{Index: idx, RecordHash: fmt.Sprintf("%x", oar.RecordHash(entries[i]))}
			}
			res := baseResult(o.ParsedRequest(), o, rc)
			var det OutcomeDetail
			json.Unmarshal(e.Record.Detail, &det)
			for _, c := range o.Counted {
				v := ballotView(c)
				for _, w := range det.Ballots {
					if w.Node == c.Ballot.Node && w.Brain == c.Ballot.Brain {
						v.RecordHash = w.RecordHash
						if w.Node == s.cfg.Identity.ID() {
							v.Receipt, _ = r.Receipt(ctx, w.Index)
						}
					}
				}
				res.Ballots = append(res.Ballots, v)
			}
			for i := range res.Absent {
				for _, u := range det.Unanswered {
					if u.Member == res.Absent[i].Member {
						res.Absent[i].Reason = u.Reason
						if res.Absent[i].Node == decision.AnyNode && u.Node != "" {
							res.Absent[i].Node = u.Node
						}
					}
				}
			}
			return res, idx, e.Record, nil
		}
		end = from
	}
	return nil, 0, nil, errNoDecision
}
