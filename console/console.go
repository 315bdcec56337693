// Package console is the node's web console, served on the API's listener under
// /console/: server-rendered html/template pages with their stylesheet and one small
// script embedded in the binary, nothing fetched from anywhere else.
//
// A person signs in with an API key or through an OIDC identity provider (the
// authorization code flow with PKCE); either way the credential goes through the
// node's own authentication (the API's Authenticate), and the console keeps a
// server-side session, never the key or the token. Sign-ins and sign-outs are
// recorded. Every page reads through the same governed paths as the API: the brains
// a principal may use are exactly what /v1/models lists for them, every audit record
// shown passed the audit.read decision the audit explainer uses, and changes
// (principals) are decided by Cedar and made by the admin API's own functions, each
// recorded before it takes effect.
//
// Every state-changing request is a POST that must carry the session's synchronizer
// token and come from the console's own origin (Origin / Sec-Fetch-Site); every
// response carries a strict Content-Security-Policy. The pages are listed in one
// registry (pages, page.go): a capability adds its page as a file, not a rewrite.
package console

import (
	"bytes"
	"context"
	"crypto/rand"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/sios-project/sios/admin"
	"github.com/sios-project/sios/api"
	"github.com/sios-project/sios/brain"
	"github.com/sios-project/sios/fleet"
	"github.com/sios-project/sios/invoke"
	"github.com/sios-project/sios/ledger"
	"github.com/sios-project/sios/oar"
	"github.com/sios-project/sios/policy"
	"github.com/sios-project/sios/ratelimit"
	"github.com/sios-project/sios/sso"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Prefix is where the console is served.
const Prefix = "/console/"

// Pipeline is what the console needs of the invocation pipeline (*invoke.Pipeline):
// the API's own authentication, its model listing, the audit.read decision, the
// route table and the perimeter's live rates. Implementations must be safe for
// concurrent use.
type Pipeline interface {
	Authenticate(ctx context.Context, bearer string) (*policy.Principal, error)
	RefuseAuthentication(ctx context.Context, addr, reason string) bool
	Models(p *policy.Principal) []invoke.Model
	MayReadRecord(pr *policy.Principal, idx uint64, rec *oar.Record) bool
	BrainUsage(id string) (brain.RateLimit, ratelimit.Usage, bool)
	PrincipalUsage(pr *policy.Principal) (perMinute, burst int, u ratelimit.Usage)
}

// NodeInfo is what the node page states about the node that does not change while it
// runs.
type NodeInfo struct {
	ID          string
	Name        string
	Institution string // the root id of the institution that enrolled the node
	Origin      string // the audit log's checkpoint origin
	NoteKey     string // the Ed25519 signed-note verifier key of its checkpoints
	MLDSA65     string // SHA-256 of the ML-DSA-65 public key, hex
	Attestation string // fleet.AttestSoftware or fleet.AttestTPM
	EKSHA256    string // the TPM's endorsement key, with a TPM
	AKName      string // the TPM attestation key's name, with a TPM
	// Posture is the classification the node states to the fleet; Accreditation the
	// operator's cap ("" when unset); BackendAccreditation the model servers'.
	Posture, Accreditation, BackendAccreditation string
	Backend                                      string
	Listen, FleetListen                          string
	Started                                      time.Time
}

// OIDCClient is an identity provider the console signs people in with.
type OIDCClient struct {
	Name   string // the issuer's name in the oidc config
	Issuer string // its issuer URL
	Client sso.ConsoleClient
	Secret string // the client secret, "" for a public client
}

// Config is what the console is built from: the node's subsystems, passed one by one.
type Config struct {
	Pipeline   Pipeline
	Policy     *policy.Live // reloaded on SIGHUP: every decision uses the policies in force
	Principals *policy.Principals
	Brains     *brain.Live
	// Append writes an audit record and returns its receipt once durable.
	Append func(ctx context.Context, r *oar.Record) (*oar.Receipt, []byte, error)
	// OpenLog opens the node's own audit log for reading at its latest checkpoint.
	OpenLog func() (*ledger.Reader, error)
	// Verify re-derives the whole log (ledger.Reader.Verify), telling progress how
	// far it got as it goes.
	Verify func(ctx context.Context, progress func(done, total uint64)) (*ledger.VerifyResult, error)
	// Export builds an evidence bundle of entries from..to-1 (the node adds its TPM
	// evidence, as 'sios audit export' does).
	Export func(ctx context.Context, from, to uint64) (*ledger.Bundle, error)
	Node   NodeInfo
	// Admin is the admin API's view of the running node; nil until the node has
	// started (its fleet joined).
	Admin func() *admin.Deps
	// Institutions lists the institution roots the node trusts.
	Institutions func() ([]fleet.TrustedRoot, error)
	// Readiness runs the checks /readyz runs (nil: none).
	Readiness func() []api.Check
	// SSO describes the identity providers' keys; nil without single sign-on.
	SSO func() []sso.IssuerStatus
	// OIDC are the identity providers that offer console sign-in.
	OIDC []OIDCClient
	// HTTPClient reaches the identity providers (through the node's egress guard).
	HTTPClient *http.Client
	// SecureCookies marks cookies Secure even on plain HTTP requests: the console is
	// reached through a TLS-terminating proxy (an https redirect URL says so).
	SecureCookies bool
	Log           *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Console serves the web console. It is safe for concurrent use.
type Console struct {
	cfg      Config
	mux      *http.ServeMux
	pages    []Page
	tmpl     map[string]*template.Template // by template file
	static   fs.FS
	sessions *sessions
	keys     *keys
	verifies *verifies
	oidc     *oidcFlows
	origin   *http.CrossOriginProtection
	exports  chan struct{} // a slot per bundle being built (MaxExports)

	ctx    context.Context // ended by Close: verifications stop
	cancel context.CancelFunc
	bg     sync.WaitGroup
}

// New builds the console. It fails only on a template that does not parse.
func New(cfg Config) (*Console, error) {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.HTTPClient == nil && len(cfg.OIDC) > 0 {
		return nil, errors.New("console: OIDC sign-in needs Config.HTTPClient (the egress guard's client)")
	}
	k, err := newKeys(rand.Reader)
	if err != nil {
		return nil, err
	}
	static, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, err
	}
	c := &Console{cfg: cfg, mux: http.NewServeMux(), static: static, keys: k,
		sessions: newSessions(cfg.Now), verifies: newVerifies(cfg.Now), oidc: newOIDCFlows(cfg.OIDC, cfg.HTTPClient, cfg.Now),
		origin: http.NewCrossOriginProtection(), exports: make(chan struct{}, MaxExports)}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.origin.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.renderError(w, r, nil, errorf(http.StatusForbidden, "cross-site request refused: this form may only be sent from the console's own pages"))
	}))
	c.pages = pages()
	if err := c.parseTemplates(); err != nil {
		return nil, err
	}
	c.routes()
	return c, nil
}

// Close stops the verifications in progress and waits for them.
func (c *Console) Close() {
	c.cancel()
	c.bg.Wait()
}

// parseTemplates parses every page's template (and the console's own) with the layout.
func (c *Console) parseTemplates() error {
	files := []string{"signin.html", "signedin.html", "error.html", "result.html"}
	for _, p := range c.pages {
		if p.Template != "" {
			files = append(files, p.Template)
		}
	}
	c.tmpl = map[string]*template.Template{}
	for _, f := range files {
		if _, done := c.tmpl[f]; done {
			continue
		}
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+f)
		if err != nil {
			return fmt.Errorf("console template %s: %v", f, err)
		}
		c.tmpl[f] = t
	}
	return nil
}

// routes registers the console's own routes and every page's.
func (c *Console) routes() {
	c.mux.HandleFunc("GET /console/static/{name}", c.serveStatic)
	c.mux.HandleFunc("GET /console/signin", c.signInPage)
	c.mux.Handle("POST /console/signin", c.origin.Handler(http.HandlerFunc(c.signInKey)))
	c.mux.HandleFunc("GET /console/oidc/start", c.oidcStart)
	c.mux.HandleFunc("GET "+sso.ConsoleCallbackPath, c.oidcCallback)
	c.mux.Handle("POST /console/signout", c.origin.Handler(c.authed(c.signOut)))
	c.mux.Handle("GET /console/{$}", c.authed(func(w http.ResponseWriter, v *View) error {
		http.Redirect(w, v.r, c.pages[0].Path, http.StatusSeeOther)
		return nil
	}))
	for _, p := range c.pages {
		c.mux.Handle("GET "+p.Path, c.authed(c.pageHandler(p)))
		for _, a := range p.Actions {
			c.mux.Handle("POST "+a.Path, c.origin.Handler(c.authed(c.actionHandler(p, a))))
		}
	}
	c.mux.HandleFunc(Prefix, func(w http.ResponseWriter, r *http.Request) {
		c.renderError(w, r, nil, errorf(http.StatusNotFound, "no console page at %s", r.URL.Path))
	})
}

// ServeHTTP serves /console/ with the console's security headers on every response.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	securityHeaders(w.Header())
	c.mux.ServeHTTP(w, r)
}

// CSP is the console's Content-Security-Policy: nothing but its own stylesheet and
// script, no inline script or style, forms only to itself, never framed.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

func securityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", CSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=(), usb=()")
}

// serveStatic serves an embedded stylesheet or script.
func (c *Console) serveStatic(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	b, err := fs.ReadFile(c.static, name)
	if err != nil || strings.Contains(name, "/") {
		c.renderError(w, r, nil, errorf(http.StatusNotFound, "no console file %s", name))
		return
	}
	switch {
	case strings.HasSuffix(name, ".css"):
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
	case strings.HasSuffix(name, ".js"):
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	case strings.HasSuffix(name, ".svg"):
		w.Header().Set("Content-Type", "image/svg+xml")
	default:
		w.Header().Set("Content-Type", "application/octet-stream")
	}
	w.Header().Set("Cache-Control", "private, max-age=3600")
	w.Write(b)
}

// Error is an error whose message the viewer may see, with its HTTP status.
type Error struct {
	Status  int
	Message string
}

func (e *Error) Error() string { return e.Message }

func errorf(status int, format string, a ...any) *Error {
	return &Error{Status: status, Message: fmt.Sprintf(format, a...)}
}

// shell is what the layout renders around every page.
type shell struct {
	Title   string
	Nav     []navItem
	Viewer  *viewerInfo // nil on the sign-in pages
	CSRF    string
	NodeID  string
	Script  string // a script of static/ the page uses
	Refresh string // a meta refresh ("0;url=/console/")
	Data    any
}

type navItem struct {
	Title, Path string
	Current     bool
}

// render executes a template into a buffer, then writes it: a template error never
// leaves half a page.
func (c *Console) render(w http.ResponseWriter, status int, file string, s shell) {
	var buf bytes.Buffer
	if err := c.tmpl[file].ExecuteTemplate(&buf, "layout", s); err != nil {
		c.cfg.Log.Error("console: render", "template", file, "err", err)
		http.Error(w, "the console could not render this page; see the node's log", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// renderError renders an error page: the message of an *Error, else a generic one
// (the detail goes to the node's log, never to the page).
func (c *Console) renderError(w http.ResponseWriter, r *http.Request, v *View, err error) {
	var e *Error
	if !errors.As(err, &e) {
		if errors.Is(err, context.Canceled) {
			return
		}
		c.cfg.Log.Error("console: request failed", "path", r.URL.Path, "err", err)
		e = errorf(http.StatusInternalServerError, "the node could not complete this request; its log says why")
	}
	s := shell{Title: http.StatusText(e.Status), Data: e}
	if v != nil {
		s = c.shellFor(v, s.Title, nil, s.Data)
	}
	c.render(w, e.Status, "error.html", s)
}
