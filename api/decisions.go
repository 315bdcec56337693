package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/sios-project/sios/decision"
	"github.com/sios-project/sios/deliberate"
	"github.com/sios-project/sios/policy"
)

// DecisionGateway is what the decision endpoints need (deliberate.Service). Outcomes
// meant for the caller are *invoke.Error.
type DecisionGateway interface {
	Decide(ctx context.Context, p *policy.Principal, ask deliberate.Ask) (*deliberate.Result, error)
	Decision(ctx context.Context, p *policy.Principal, id string) (*deliberate.Result, error)
}

// DecisionRequest is POST /v1/decisions (docs/decisions.md, "API and CLI").
type DecisionRequest struct {
	Question string   `json:"question"`
	Options  []string `json:"options"`
	// Panel is a panel's name (a file of DIR/panels), or a panel given inline:
	// {"members": [...], "weights": {...}, "min_nodes": N, "min_institutions": N}.
	Panel json.RawMessage `json:"panel,omitempty"`
	// Members is a panel of these members, as 'sios decide --members' gives it.
	Members []string `json:"members,omitempty"`
	// Rule overrides the panel's: a rule's name, or {"name", "quorum", "vetoers"}.
	Rule    json.RawMessage `json:"rule,omitempty"`
	Quorum  int             `json:"quorum,omitempty"`  // K of the quorum rule
	Vetoers []string        `json:"vetoers,omitempty"` // the members who may veto under the veto rule
	// Deadline is how long the members have, as a duration ("30s"); default 30s, at
	// most 5m.
	Deadline string `json:"deadline,omitempty"`
	// Classification of the question; else X-Sios-Classification; else OFFICIAL.
	Classification string `json:"classification,omitempty"`
}

// inlinePanel is a panel given in a request: a panel file's members, without its id.
type inlinePanel struct {
	Members         []string       `json:"members"`
	Weights         map[string]int `json:"weights,omitempty"`
	MinNodes        int            `json:"min_nodes,omitempty"`
	MinInstitutions int            `json:"min_institutions,omitempty"`
}

func (s *Server) decisionRoutes(dg DecisionGateway) {
	s.mux.HandleFunc("POST /v1/decisions", s.authed(func(w http.ResponseWriter, r *http.Request, p *policy.Principal) error {
		data, err := readBody(w, r)
		if err != nil {
			return err
		}
		var req DecisionRequest
		if err := strictJSON(data, &req); err != nil {
			return Errorf(http.StatusBadRequest, "invalid_json", "the request body is not a decision request: %s", decodeProblem(err))
		}
		ask, err := req.Ask(classificationHeader(r))
		if err != nil {
			return err
		}
		res, err := dg.Decide(r.Context(), p, ask)
		if err != nil {
			return err
		}
		w.Header().Set(ReceiptHeader, EncodeReceipt(res.Receipt))
		writeJSON(w, http.StatusOK, res)
		return nil
	}))
	s.mux.HandleFunc("GET /v1/decisions/{id}", s.authed(func(w http.ResponseWriter, r *http.Request, p *policy.Principal) error {
		res, err := dg.Decision(r.Context(), p, r.PathValue("id"))
		if err != nil {
			return err
		}
		if res.Receipt != nil {
			w.Header().Set(ReceiptHeader, EncodeReceipt(res.Receipt))
		}
		writeJSON(w, http.StatusOK, res)
		return nil
	}))
}

// Ask turns a request into what the decision service takes, refusing what cannot be
// one with a 400 naming the member; header is the X-Sios-Classification header's value
// ("" for none). The console's decision form goes through it too.
func (q *DecisionRequest) Ask(header string) (deliberate.Ask, error) {
	bad := func(param, format string, a ...any) error {
		return &Error{Status: http.StatusBadRequest, Type: "invalid_request_error", Code: "invalid_request", Param: param, Message: fmt.Sprintf(format, a...)}
	}
	ask := deliberate.Ask{Question: q.Question, Options: q.Options, Classification: q.Classification}
	if ask.Classification == "" {
		ask.Classification = header
	} else if header != "" && header != ask.Classification {
		return ask, bad("classification", "classification %q and the %s header %q differ", q.Classification, ClassificationHeader, header)
	}
	switch {
	case len(q.Panel) > 0 && len(q.Members) > 0:
		return ask, bad("panel", "give panel or members, not both")
	case len(q.Members) > 0:
		ask.Panel = &decision.Panel{Members: q.Members}
	case len(q.Panel) > 0 && q.Panel[0] == '"':
		if err := json.Unmarshal(q.Panel, &ask.PanelID); err != nil || ask.PanelID == "" {
			return ask, bad("panel", "panel must be a panel's name or a panel")
		}
	case len(q.Panel) > 0:
		var ip inlinePanel
		if err := strictJSON(q.Panel, &ip); err != nil {
			return ask, bad("panel", "panel must be a panel's name or {members, weights, min_nodes, min_institutions}: %s", decodeProblem(err))
		}
		ask.Panel = &decision.Panel{Members: ip.Members, Weights: ip.Weights, MinNodes: ip.MinNodes, MinInstitutions: ip.MinInstitutions}
	}
	rule, err := q.rule()
	if err != nil {
		return ask, bad("rule", "%v", err)
	}
	ask.Rule = rule
	if q.Deadline != "" {
		d, err := time.ParseDuration(q.Deadline)
		if err != nil {
			return ask, bad("deadline", "deadline %q is not a duration such as 30s", q.Deadline)
		}
		ask.Deadline = d
	}
	return ask, nil
}

// rule is the rule a request names, nil when it leaves the panel's: a name (with quorum
// and vetoers beside it), an object, or only quorum or vetoers (the quorum or veto rule).
func (q *DecisionRequest) rule() (*decision.Rule, error) {
	var r decision.Rule
	switch {
	case len(q.Rule) > 0 && q.Rule[0] == '"':
		if err := json.Unmarshal(q.Rule, &r.Name); err != nil {
			return nil, err
		}
	case len(q.Rule) > 0:
		if err := strictJSON(q.Rule, &r); err != nil {
			return nil, fmt.Errorf("rule must be one of %s, or {name, quorum, vetoers}", strings.Join(decision.Rules, ", "))
		}
	case q.Quorum > 0:
		r.Name = decision.RuleQuorum
	case len(q.Vetoers) > 0:
		r.Name = decision.RuleVeto
	default:
		return nil, nil
	}
	if q.Quorum > 0 {
		r.Quorum = q.Quorum
	}
	if len(q.Vetoers) > 0 {
		r.Vetoers = q.Vetoers
	}
	return &r, nil
}

// strictJSON decodes one JSON value into v, refusing unknown members and trailing data.
func strictJSON(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("trailing data after the JSON value")
	}
	return nil
}

// decodeProblem describes a decoding error without echoing the body, naming an
// unknown member.
func decodeProblem(err error) string {
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return "unknown member " + name
	}
	return jsonProblem(err)
}
