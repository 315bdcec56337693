package console

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/sios-project/sios/api"
	"github.com/sios-project/sios/decision"
	"github.com/sios-project/sios/deliberate"
	"github.com/sios-project/sios/oar"
	"github.com/sios-project/sios/policy"
)

// The decisions page: the decisions made on this node that the viewer may read — a
// decision is its decision.outcome record, and the viewer sees it exactly when they may
// read that record (Cedar audit.read, the decision GET /v1/decisions/ID makes: its
// tenant, at or below their clearance) —, newest first, from the checkpointed log. One
// decision is shown as GET /v1/decisions/ID answers it (the same function), with links
// to its records. A decision is asked with the API's own request (POST /v1/decisions'
// body, checked by the same function) and made by the same service, which records it.

func decisionsPage() Page {
	return Page{Path: "/console/decisions", Title: "Decisions", Nav: true, Template: "decisions.html", Data: decisionsData,
		Visible: func(v *View) bool { return v.c.cfg.Decisions != nil },
		Actions: []Action{{Path: "/console/decisions/ask", Do: askDecision}}}
}

func decisionPage() Page {
	return Page{Path: "/console/decisions/{id}", Title: "Decision", Template: "decision.html", Data: decisionData,
		Visible: func(v *View) bool { return v.c.cfg.Decisions != nil }}
}

type decisionRow struct {
	ID             string
	Index          uint64 // of the decision.outcome record
	Time           string
	Actor          string
	Question       string // the question's SHA-256 (the log holds no text)
	Status         string
	Outcome        *string
	Rule           string
	Classification string
}

type decisionsView struct {
	Rows   []decisionRow
	Size   uint64 // entries in the checkpointed log
	Before uint64
	Lowest uint64
	More   bool // there are earlier entries to look through
	Empty  bool
	Rules  []string
	Levels []string
}

// maybeOutcome says whether an entry's bytes may be a decision.outcome record, without
// parsing them: an entry is in canonical form (oar.Parse refuses any other), whose
// members are sorted, and "action" is the first member of every OAR/1 record.
func maybeOutcome(raw []byte) bool {
	return bytes.HasPrefix(raw, outcomePrefix)
}

var outcomePrefix = []byte(`{"action":"` + oar.ActionDecisionOutcome + `"`)

func decisionsData(v *View) (any, error) {
	before, err := query(v.r, "before")
	if err != nil {
		return nil, err
	}
	out := &decisionsView{Rules: decision.Rules, Levels: levelsUpTo(v.P.Clearance)}
	if out.Before, _, err = parseIndex("before", before); err != nil {
		return nil, err
	}
	r, size, end, err := v.tailFrom(out.Before)
	if err != nil {
		return nil, err
	}
	if r == nil {
		out.Empty = true
		return out, nil
	}
	out.Size = size
	out.Lowest, err = scan(v.r.Context(), r, end, MaxTailScan, false, func(e entry) bool {
		if !maybeOutcome(e.Raw) {
			return true
		}
		p, err := oar.Parse(e.Raw)
		if err != nil || p.Record == nil || p.Record.Action != oar.ActionDecisionOutcome || !v.mayRead(e.Index, p.Record) {
			return true
		}
		out.Rows = append(out.Rows, decisionRowOf(e.Index, p.Record))
		return len(out.Rows) < MaxDecisionRows
	})
	if err != nil {
		return nil, err
	}
	out.More = out.Lowest > 0
	return out, nil
}

func decisionRowOf(idx uint64, rec *oar.Record) decisionRow {
	row := decisionRow{ID: strings.TrimPrefix(rec.Resource, "decision/"), Index: idx, Time: rec.Time, Actor: rec.Actor.ID,
		Classification: rec.Classification}
	for _, d := range rec.Inputs {
		if d.Name == "question" {
			row.Question = d.SHA256
		}
	}
	var det deliberate.OutcomeDetail
	if json.Unmarshal(rec.Detail, &det) == nil {
		row.Status, row.Outcome, row.Rule = det.Status, det.Outcome, det.Rule
	}
	return row
}

type ballotRow struct {
	deliberate.BallotView
	Local *uint64 // the index of its decision.ballot record when this node holds it
}

type tallyRow struct {
	Option string
	Votes  int
	Chosen bool
}

type decisionView struct {
	Res      *deliberate.Result
	Tally    []tallyRow
	Ballots  []ballotRow
	NodeID   string
	Question string // from the outcome record
	Time     string
	Actor    string
	// Request is the index of the decision.request record, when the viewer may read it
	// and it is among the entries searched.
	Request *uint64
	// Pending: the outcome record is not yet in the checkpointed log.
	Pending bool
}

func decisionData(v *View) (any, error) {
	res, err := v.c.cfg.Decisions.Decision(v.r.Context(), &v.P, v.r.PathValue("id"))
	if err != nil {
		return nil, outcome(err)
	}
	out := &decisionView{Res: res, NodeID: v.c.cfg.Node.ID}
	for opt, n := range res.Tally {
		out.Tally = append(out.Tally, tallyRow{Option: opt, Votes: n, Chosen: res.Outcome != nil && *res.Outcome == opt})
	}
	sort.Slice(out.Tally, func(i, j int) bool {
		a, b := out.Tally[i], out.Tally[j]
		return a.Votes > b.Votes || a.Votes == b.Votes && a.Option < b.Option
	})
	for _, b := range res.Ballots {
		row := ballotRow{BallotView: b}
		if b.Node == v.c.cfg.Node.ID && b.Receipt != nil {
			idx := b.Receipt.Index
			row.Local = &idx
		}
		out.Ballots = append(out.Ballots, row)
	}
	// The outcome record, read as the record page reads it (the same audit.read), for
	// the question's digest and the link to the request record.
	// A decision just made may not be checkpointed yet. (Its receipt is the API's, in
	// the result: the page links to the record, whose page shows it.)
	_, rv, err := v.readEntryWith(res.Record.Index, false)
	var e *Error
	switch {
	case err == nil && rv.Record != nil && rv.Record.Resource == "decision/"+res.DecisionID:
		row := decisionRowOf(rv.Index, rv.Record)
		out.Question, out.Time, out.Actor = row.Question, row.Time, row.Actor
		for _, l := range rv.Links {
			if l.Rel == "request" {
				out.Request = l.Index
			}
		}
	case err == nil, errors.As(err, &e) && e.Status == http.StatusNotFound:
		out.Pending = true
	default:
		return nil, err
	}
	return out, nil
}

// askDecision asks a decision with the API's own request, checked by the API's own
// function, and made (and recorded) by the decision service; the browser goes on to
// the decision.
func askDecision(w http.ResponseWriter, v *View, f form) (*Result, error) {
	req := api.DecisionRequest{Question: f.get("question"), Options: commaList(f.get("options")), Members: commaList(f.get("members")),
		Vetoers: commaList(f.get("vetoers")), Deadline: strings.TrimSpace(f.get("deadline")), Classification: f.get("classification")}
	if p := strings.TrimSpace(f.get("panel")); p != "" {
		req.Panel, _ = json.Marshal(p)
	}
	if r := f.get("rule"); r != "" {
		req.Rule, _ = json.Marshal(r)
	}
	if q := strings.TrimSpace(f.get("quorum")); q != "" {
		n, err := strconv.Atoi(q)
		if err != nil || n < 1 {
			return nil, errorf(http.StatusBadRequest, "quorum: %q is not a number of members (1 or more)", clip(q))
		}
		req.Quorum = n
	}
	ask, err := req.Ask("")
	if err != nil {
		return nil, outcome(err)
	}
	res, err := v.c.cfg.Decisions.Decide(v.r.Context(), &v.P, ask)
	if err != nil {
		return nil, outcome(err)
	}
	http.Redirect(w, v.r, "/console/decisions/"+res.DecisionID, http.StatusSeeOther)
	return nil, nil
}

// commaList splits a comma-separated field, dropping empty items.
func commaList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

func levels() []string { return levelsUpTo(policy.TopSecret) }

// levelsUpTo are the classifications up to max: what a form offers a viewer of that
// clearance (policy refuses the rest, whatever a form sends).
func levelsUpTo(max policy.Level) []string {
	var out []string
	for _, l := range policy.Levels() {
		if l <= max {
			out = append(out, l.String())
		}
	}
	return out
}
