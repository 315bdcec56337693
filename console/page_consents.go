package console

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sios-project/sios/api"
	"github.com/sios-project/sios/consent"
)

// The consents page: the viewer's consent grants — an admin's, every grant this node
// made — exactly as GET /v1/consents lists them (the same function, and the same
// summary of each), with revocation, and a form to make a grant, each through the
// function behind DELETE /v1/consents/ID and POST /v1/consents, which record the
// change (consent.revoke, consent.grant) before it takes effect.

func consentsPage() Page {
	return Page{Path: "/console/consents", Title: "Consents", Nav: true, Template: "consents.html", Data: consentsData,
		Visible: func(v *View) bool { return v.c.cfg.Consents != nil },
		Actions: []Action{
			{Path: "/console/consents/revoke", Do: revokeConsent},
			{Path: "/console/consents/grant", Do: makeConsent},
		}}
}

// consentGrantPage hands out a grant's signed bytes, for its grantor to give to the
// audience (who brings it with 'sios ask --consent FILE').
func consentGrantPage() Page {
	return Page{Path: "/console/consents/grant/{id}", Title: "Consent grant", Data: consentGrantData,
		Visible: func(v *View) bool { return v.c.cfg.Consents != nil }}
}

type consentRow struct {
	api.ConsentSummary
	Tenant string // the grantor's
	Mine   bool
}

type consentsView struct {
	Rows    []consentRow
	Admin   bool // the list is every grant of the node
	Actions []string
	Levels  []string
}

func consentsData(v *View) (any, error) {
	es, err := v.c.cfg.Consents.ConsentList(v.r.Context(), &v.P)
	if err != nil {
		return nil, outcome(err)
	}
	now := v.c.cfg.Now()
	out := &consentsView{Actions: []string{consent.ActionInvoke, consent.ActionMemoryRead}, Levels: levelsUpTo(v.P.Clearance)}
	for _, e := range es {
		g := e.Grant
		mine := g.Grantor.Principal == v.P.ID && g.Grantor.Tenant == v.P.Tenant
		out.Admin = out.Admin || !mine
		out.Rows = append(out.Rows, consentRow{ConsentSummary: api.ConsentSummaryOf(e, now), Tenant: g.Grantor.Tenant, Mine: mine})
	}
	return out, nil
}

func consentGrantData(v *View) (any, error) {
	id := v.r.PathValue("id")
	es, err := v.c.cfg.Consents.ConsentList(v.r.Context(), &v.P)
	if err != nil {
		return nil, outcome(err)
	}
	for _, e := range es {
		if e.Grant.ID == id {
			return &Download{Name: "consent-" + id + ".json", ContentType: "application/json", Body: e.Raw}, nil
		}
	}
	return nil, errorf(http.StatusNotFound, "this node holds no grant %s that you may see", clip(id))
}

// revokeConsent revokes one grant, the viewer's own (an admin's: any), as DELETE
// /v1/consents/ID does.
func revokeConsent(w http.ResponseWriter, v *View, f form) (*Result, error) {
	id := f.get("id")
	e, rc, err := v.c.cfg.Consents.ConsentRevoke(context.WithoutCancel(v.r.Context()), &v.P, id)
	if err != nil {
		return nil, outcome(err)
	}
	out := &Result{Title: "Grant revoked", Back: "/console/consents"}
	if rc == nil {
		out.Message = fmt.Sprintf("Grant %s was already revoked (at %s): nothing changed, nothing was recorded.", e.Grant.ID, e.Revoked.UTC().Format(time.RFC3339))
		return out, nil
	}
	idx := rc.Index
	out.Receipt = &idx
	out.Message = fmt.Sprintf("Grant %s revoked and recorded: every later use of it is refused.", e.Grant.ID)
	return out, nil
}

// makeConsent makes a grant with the API's own request, checked by the API's own
// function and made, signed and recorded by the pipeline's.
func makeConsent(w http.ResponseWriter, v *View, f form) (*Result, error) {
	req := api.ConsentRequest{To: strings.TrimSpace(f.get("to")), ToNode: strings.TrimSpace(f.get("to_node")), Action: f.get("action"),
		Brain: strings.TrimSpace(f.get("brain")), Subjects: commaList(f.get("subjects")), MaxClassification: f.get("max_classification"),
		Purpose: f.get("purpose"), Retain: f.get("retain") == "yes"}
	if u := strings.TrimSpace(f.get("uses")); u != "" {
		n, err := strconv.Atoi(u)
		if err != nil || n < 0 {
			return nil, errorf(http.StatusBadRequest, "uses: %q is not a number of uses (0 for no limit)", clip(u))
		}
		req.Uses = n
	}
	d, err := parseLifetime(f.get("expires"))
	if err != nil {
		return nil, err
	}
	req.ExpiresIn = int64(d / time.Second)
	ng, err := req.NewGrant()
	if err != nil {
		return nil, outcome(err)
	}
	e, rc, err := v.c.cfg.Consents.ConsentGrant(context.WithoutCancel(v.r.Context()), &v.P, ng)
	if err != nil {
		return nil, outcome(err)
	}
	out := &Result{Title: "Grant made", Back: "/console/consents", Download: "/console/consents/grant/" + e.Grant.ID,
		Message: fmt.Sprintf("Grant %s to %s made and recorded; it expires at %s. Give its audience the signed grant.",
			e.Grant.ID, req.To, e.Grant.Expires)}
	if rc != nil {
		idx := rc.Index
		out.Receipt = &idx
	}
	return out, nil
}

// parseLifetime reads a grant's lifetime as 'sios consent grant --expires' takes it:
// 30d, 12h, 90m or 45s, at most consent.MaxGrantLifetime.
func parseLifetime(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	bad := errorf(http.StatusBadRequest, "expires: %q is not a lifetime such as 30d, 12h, 90m or 45s, of at most %d days (MaxGrantLifetime)",
		clip(s), int(consent.MaxGrantLifetime/(24*time.Hour)))
	if len(s) < 2 {
		return 0, bad
	}
	unit := map[byte]time.Duration{'d': 24 * time.Hour, 'h': time.Hour, 'm': time.Minute, 's': time.Second}[s[len(s)-1]]
	n, err := strconv.ParseUint(s[:len(s)-1], 10, 32)
	if unit == 0 || err != nil || n == 0 || time.Duration(n) > consent.MaxGrantLifetime/unit {
		return 0, bad
	}
	return time.Duration(n) * unit, nil
}
