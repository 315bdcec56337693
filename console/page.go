package console

import (
	"fmt"
	"html/template"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/sios-project/sios/policy"
)

// Page is one page of the console: a GET route that renders its template with what
// its Data function gathers for the signed-in viewer, and the POST actions that
// belong to it. Each page lives in a file of its own (page_NAME.go) with its template
// (templates/NAME.html).
type Page struct {
	// Path is the GET route, under /console/; it may hold wildcards
	// ("/console/audit/record/{index}").
	Path string
	// Title heads the page and names it in the navigation.
	Title string
	// Nav lists the page in the navigation bar (pages reached by links are not).
	Nav bool
	// Template is the page's file in templates/: it defines "content".
	Template string
	// Script names a file of static/ the page loads (its only script), or "".
	Script string
	// Visible says whether the viewer may open the page (nil: everyone signed in);
	// a page the viewer may not open is neither listed nor served.
	Visible func(v *View) bool
	// Data gathers what the template shows for the viewer. An *Error is shown to
	// the viewer; any other error is logged and shown as a failure of the node.
	Data func(v *View) (any, error)
	// Actions are the page's state-changing requests.
	Actions []Action
}

// Action is a POST request of a page: the console has already checked the request's
// origin, the session and its synchronizer token, and decoded the form. Do either
// writes the answer itself (a redirect, a download) and returns nil, or returns a
// result to show, or an error.
type Action struct {
	Path string
	Do   func(w http.ResponseWriter, v *View, f form) (*Result, error)
}

// Result is what an action shows when it answers with a page of its own.
type Result struct {
	Title   string
	Message string
	// Secret, if set, is shown once with a warning (a new API key).
	Secret string
	// Receipt is the log index of the record the action wrote.
	Receipt *uint64
	Back    string // where to go next
}

// pages is the console's page registry, in navigation order. To add a page (the
// decisions, consents and roles of other capabilities): write page_NAME.go with a
// function returning its Page, its template templates/NAME.html, and add the
// function here.
func pages() []Page {
	return []Page{
		nodePage(),
		brainsPage(),
		fleetPage(),
		auditPage(),
		recordPage(),
		recordByHashPage(),
		receiptPage(),
		verifyPage(),
		verifyStatusPage(),
		replicasPage(),
		principalsPage(),
	}
}

// Download is what a page's Data (or an action) answers with instead of a page: a
// file to save, or JSON for the page's script.
type Download struct {
	Name        string // the file name offered; "" answers inline
	ContentType string
	Body        []byte
}

// Redirect is what a page's Data answers to send the browser to another console page.
type Redirect string

func writeDownload(w http.ResponseWriter, d *Download) {
	h := w.Header()
	h.Set("Content-Type", d.ContentType)
	h.Set("Cache-Control", "no-store")
	if d.Name != "" {
		h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": d.Name}))
	}
	w.Write(d.Body)
}

// View is one request of a signed-in viewer.
type View struct {
	c    *Console
	r    *http.Request
	sess *session
	// P is the viewer as of this request (an API-key session's principal is re-read
	// from the store each time).
	P policy.Principal

	nodeRecords *bool           // memoized mayReadNodeRecords
	brains      map[string]bool // memoized visibleBrains
}

// authed resolves the request's session, re-checks it, and runs h with the viewer; a
// request without a usable session goes to the sign-in page (a GET) or is refused.
func (c *Console) authed(h func(w http.ResponseWriter, v *View) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, why := c.viewer(r)
		if v == nil {
			if r.Method == http.MethodGet || r.Method == http.MethodHead {
				q := url.Values{"next": {r.URL.RequestURI()}}
				if why != "" {
					q.Set("why", why)
				}
				http.Redirect(w, r, "/console/signin?"+q.Encode(), http.StatusSeeOther)
				return
			}
			c.renderError(w, r, nil, errorf(http.StatusUnauthorized, "you are not signed in (or your session ended): sign in again"))
			return
		}
		if err := h(w, v); err != nil {
			c.renderError(w, r, v, err)
		}
	})
}

// Reasons a session is gone, shown on the sign-in page.
const (
	whyExpired = "expired"
	whyRevoked = "revoked"
)

// viewer returns the request's signed-in viewer, or nil and why.
func (c *Console) viewer(r *http.Request) (*View, string) {
	val, ok := cookieValue(r, sessionCookie)
	if !ok {
		return nil, ""
	}
	id, ok := decodeID(val)
	if !ok {
		return nil, ""
	}
	sess, p, ok := c.sessions.get(id)
	if !ok {
		return nil, whyExpired
	}
	if sess.via == viaKey {
		// The key must still work: revoked, rotated, expired keys and disabled or
		// removed principals end the session at once.
		cur, _, ok := c.cfg.Principals.AuthenticateHash(sess.keyHash)
		if !ok || cur.ID != p.ID || cur.Tenant != p.Tenant {
			c.sessions.remove(id)
			return nil, whyRevoked
		}
		if cur.Clearance != p.Clearance || strings.Join(cur.Roles, "\n") != strings.Join(p.Roles, "\n") {
			c.sessions.update(sess, *cur)
			p = *cur
		}
	}
	return &View{c: c, r: r, sess: sess, P: p}, ""
}

// pageHandler serves a page's GET.
func (c *Console) pageHandler(p Page) func(w http.ResponseWriter, v *View) error {
	return func(w http.ResponseWriter, v *View) error {
		if p.Visible != nil && !p.Visible(v) {
			return errorf(http.StatusForbidden, "the %s page is not open to %s", strings.ToLower(p.Title), v.P.ID)
		}
		data, err := p.Data(v)
		if err != nil {
			return err
		}
		switch d := data.(type) {
		case *Download:
			writeDownload(w, d)
			return nil
		case Redirect:
			http.Redirect(w, v.r, string(d), http.StatusSeeOther)
			return nil
		}
		s := c.shellFor(v, p.Title, &p, data)
		s.Script = p.Script
		c.render(w, http.StatusOK, p.Template, s)
		return nil
	}
}

// actionHandler serves a page's POST action.
func (c *Console) actionHandler(p Page, a Action) func(w http.ResponseWriter, v *View) error {
	return func(w http.ResponseWriter, v *View) error {
		f, err := readForm(w, v.r)
		if err != nil {
			return err
		}
		if !v.sess.checkCSRF(f.get("csrf")) {
			return errorf(http.StatusForbidden, "this form is not from your session (its token does not match): reload the page and try again")
		}
		if p.Visible != nil && !p.Visible(v) {
			return errorf(http.StatusForbidden, "the %s page is not open to %s", strings.ToLower(p.Title), v.P.ID)
		}
		res, err := a.Do(w, v, f)
		if err != nil || res == nil {
			return err
		}
		c.render(w, http.StatusOK, "result.html", c.shellFor(v, res.Title, &p, res))
		return nil
	}
}

// viewerInfo is the signed-in viewer as the layout shows them.
type viewerInfo struct {
	ID, Tenant, Clearance string
	Roles                 []string
	Via                   string
	Expires               time.Time
}

// shellFor is the layout's data for a page of a signed-in viewer.
func (c *Console) shellFor(v *View, title string, current *Page, data any) shell {
	s := shell{Title: title, NodeID: c.cfg.Node.ID, CSRF: v.sess.csrf, Data: data,
		Viewer: &viewerInfo{ID: v.P.ID, Tenant: v.P.Tenant, Clearance: v.P.Clearance.String(), Roles: v.P.Roles,
			Via: v.sess.describe(), Expires: v.sess.expires}}
	for _, p := range c.pages {
		if !p.Nav || (p.Visible != nil && !p.Visible(v)) {
			continue
		}
		s.Nav = append(s.Nav, navItem{Title: p.Title, Path: p.Path, Current: current != nil && current.Path == p.Path})
	}
	return s
}

// mayReadNodeRecords says whether the viewer may read the node's own audit records
// (those of no tenant): Cedar's audit.read on a node record. The node's state that
// those records describe — its health, its identity providers' keys, its replicas,
// its whole log's verification — is shown to the same people.
func (v *View) mayReadNodeRecords() bool {
	if v.nodeRecords == nil {
		d := v.c.cfg.Policy.Decide(policy.Request{
			Principal: v.P, Action: policy.ActionAuditRead,
			Resource: policy.Resource{Type: policy.ResourceRecord, ID: "log", Classification: policy.Official},
			Context:  policy.Context{Tenant: v.P.Tenant, DataClassification: policy.Official, TargetAccreditation: v.P.Clearance},
		})
		v.nodeRecords = &d.Allow
	}
	return *v.nodeRecords
}

// visibleBrains are the brains the viewer may use: exactly what /v1/models lists for
// them. No other brain is named on any page they see.
func (v *View) visibleBrains() map[string]bool {
	if v.brains == nil {
		v.brains = map[string]bool{}
		for _, m := range v.c.cfg.Pipeline.Models(&v.P) {
			v.brains[m.ID] = true
		}
	}
	return v.brains
}

// funcs are the templates' helpers.
var funcs = template.FuncMap{
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04:05 UTC")
	},
	"join": strings.Join,
	"rate": func(f float64) string { return fmt.Sprintf("%.1f", f) },
	"ago": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return time.Since(t).Round(time.Second).String()
	},
	"last": func(first, count uint64) uint64 { return first + count - 1 },
	"add1": func(a uint64) uint64 { return a + 1 },
	"sub1": func(a uint64) uint64 { return a - 1 },
	"short": func(s string) string {
		if len(s) <= 16 {
			return s
		}
		return s[:16] + "…"
	},
}
