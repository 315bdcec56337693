package api

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/sios-project/sios/consent"
	"github.com/sios-project/sios/invoke"
	"github.com/sios-project/sios/oar"
	"github.com/sios-project/sios/policy"
)

// Consent grants (docs/consent.md): a principal makes, lists and revokes its own grants
// with its own key, on the node that holds its data. A grant it brings from another
// institution travels with a chat request in the X-Sios-Consent header.

// ConsentHeader carries a consent grant a caller brings with a chat request: the
// canonical grant in unpadded base64url (at most invoke.MaxConsentHeader characters).
const ConsentHeader = "X-Sios-Consent"

// ConsentGateway is what the consent endpoints need (*invoke.Pipeline). Every change
// is governed and audited; the receipt is of the change's record.
type ConsentGateway interface {
	ConsentGrant(ctx context.Context, p *policy.Principal, ng invoke.NewGrant) (*consent.Entry, *oar.Receipt, error)
	ConsentList(ctx context.Context, p *policy.Principal) ([]*consent.Entry, error)
	ConsentRevoke(ctx context.Context, p *policy.Principal, id string) (*consent.Entry, *oar.Receipt, error)
}

// ConsentRequest is POST /v1/consents.
type ConsentRequest struct {
	To                string   `json:"to"`                // ROOTID or ID@ROOTID
	ToNode            string   `json:"to_node,omitempty"` // a node of that institution
	Action            string   `json:"action"`            // invoke or memory.read
	Brain             string   `json:"brain,omitempty"`
	Subjects          []string `json:"subjects,omitempty"`
	MaxClassification string   `json:"max_classification"`
	Purpose           string   `json:"purpose"`
	ExpiresIn         int64    `json:"expires_in"` // seconds
	Uses              int      `json:"uses,omitempty"`
	Retain            bool     `json:"retain,omitempty"`
}

// ConsentSummary is one grant as GET /v1/consents lists it.
type ConsentSummary struct {
	ID       string   `json:"id"`
	To       string   `json:"to"` // the audience principal, else its institution
	ToNode   string   `json:"to_node,omitempty"`
	Action   string   `json:"action"`
	Brain    string   `json:"brain,omitempty"`
	Subjects []string `json:"subjects,omitempty"`
	Max      string   `json:"max"`
	Purpose  string   `json:"purpose"`
	Expires  string   `json:"expires"`
	State    string   `json:"state"`
	Uses     int      `json:"uses,omitempty"`
	Used     int      `json:"used"`
	Grantor  string   `json:"grantor"`
	Revoked  string   `json:"revoked,omitempty"`
}

// ConsentSummaryOf is one grant as GET /v1/consents lists it (the console lists it so
// too).
func ConsentSummaryOf(e *consent.Entry, now time.Time) ConsentSummary {
	g := e.Grant
	to := g.Audience.Principal
	if to == "" {
		to = g.Audience.Institution
	}
	s := ConsentSummary{ID: g.ID, To: to, ToNode: g.Audience.Node, Action: g.Scope.Action, Brain: g.Scope.Brain,
		Subjects: g.Scope.Subjects, Max: g.Scope.Max.String(), Purpose: g.Purpose, Expires: g.Expires,
		State: string(e.State(now)), Uses: g.Uses, Used: e.Used, Grantor: g.Grantor.Principal}
	if !e.Revoked.IsZero() {
		s.Revoked = oar.FormatTime(e.Revoked)
	}
	return s
}

func (s *Server) consentRoutes(cg ConsentGateway) {
	s.mux.HandleFunc("POST /v1/consents", s.authed(func(w http.ResponseWriter, r *http.Request, p *policy.Principal) error {
		data, err := readBody(w, r)
		if err != nil {
			return err
		}
		var req ConsentRequest
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			return Errorf(http.StatusBadRequest, "invalid_json", "the request body is not a consent request: %s", jsonProblem(err))
		}
		ng, aerr := req.NewGrant()
		if aerr != nil {
			return aerr
		}
		e, rc, err := cg.ConsentGrant(r.Context(), p, ng)
		if err != nil {
			return err
		}
		setReceipt(w.Header(), w, rc)
		writeJSON(w, http.StatusCreated, map[string]any{"id": e.Grant.ID, "expires": e.Grant.Expires, "grant": json.RawMessage(e.Raw)})
		return nil
	}))
	s.mux.HandleFunc("GET /v1/consents", s.authed(func(w http.ResponseWriter, r *http.Request, p *policy.Principal) error {
		es, err := cg.ConsentList(r.Context(), p)
		if err != nil {
			return err
		}
		now := time.Now()
		out := make([]ConsentSummary, len(es))
		for i, e := range es {
			out[i] = ConsentSummaryOf(e, now)
		}
		writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": out})
		return nil
	}))
	s.mux.HandleFunc("DELETE /v1/consents/{id}", s.authed(func(w http.ResponseWriter, r *http.Request, p *policy.Principal) error {
		e, rc, err := cg.ConsentRevoke(r.Context(), p, r.PathValue("id"))
		if err != nil {
			return err
		}
		if rc != nil {
			setReceipt(w.Header(), w, rc)
		}
		writeJSON(w, http.StatusOK, map[string]any{"id": e.Grant.ID, "state": string(e.State(time.Now())), "revoked": oar.FormatTime(e.Revoked)})
		return nil
	}))
}

// NewGrant checks what the pipeline cannot know was meant: the classification's
// spelling and the expiry's unit. Everything else is the grant format's to check. The
// console's grant form goes through it too.
func (req *ConsentRequest) NewGrant() (invoke.NewGrant, error) {
	bad := func(param, format string, a ...any) error {
		return &Error{Status: http.StatusBadRequest, Type: "invalid_request_error", Code: "invalid_request", Param: param, Message: fmt.Sprintf(format, a...)}
	}
	ng := invoke.NewGrant{To: req.To, ToNode: req.ToNode, Action: req.Action, Brain: req.Brain, Subjects: req.Subjects,
		Purpose: req.Purpose, Uses: req.Uses, Retain: req.Retain}
	if req.To == "" {
		return ng, bad("to", "to is required: the root id of the institution the grant is for, or ID@ROOTID of a principal there")
	}
	lvl, err := policy.ParseLevel(req.MaxClassification)
	if err != nil {
		return ng, bad("max_classification", "max_classification: %v", err)
	}
	ng.Max = lvl
	max := int64(consent.MaxGrantLifetime / time.Second)
	if req.ExpiresIn <= 0 || req.ExpiresIn > max {
		return ng, bad("expires_in", "expires_in is seconds from now: 1 to %d (365 days, MaxGrantLifetime)", max)
	}
	ng.ExpiresIn = time.Duration(req.ExpiresIn) * time.Second
	return ng, nil
}

// ParseConsentHeader reads the X-Sios-Consent values of a request: none (nil), or one
// grant in unpadded base64url within invoke.MaxConsentHeader characters. The grant
// itself is the pipeline's to check.
func ParseConsentHeader(values []string) ([]byte, error) {
	bad := func(format string, a ...any) error {
		return &Error{Status: http.StatusBadRequest, Type: "invalid_request_error", Code: string(invoke.CodeConsentMalformed),
			Param: ConsentHeader, Message: fmt.Sprintf(format, a...)}
	}
	switch {
	case len(values) == 0:
		return nil, nil
	case len(values) > 1:
		return nil, bad("%s is given %d times; a request brings one grant", ConsentHeader, len(values))
	}
	v := strings.TrimSpace(values[0])
	if len(v) > invoke.MaxConsentHeader {
		return nil, bad("%s is %d characters, more than the limit of %d (a grant of at most %d bytes: MaxGrantSize)",
			ConsentHeader, len(v), invoke.MaxConsentHeader, consent.MaxGrantSize)
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(v)
	if err != nil || len(b) == 0 {
		return nil, bad("%s must be the grant in unpadded base64url (as 'sios ask --consent FILE' sends it)", ConsentHeader)
	}
	return b, nil
}
