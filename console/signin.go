package console

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/sios-project/sios/invoke"
	"github.com/sios-project/sios/oar"
	"github.com/sios-project/sios/policy"
)

// signInData is what the sign-in page shows.
type signInData struct {
	Token     string // the form's token, bound to the sign-in cookie
	Next      string
	Providers []OIDCClient
	Message   string // why the viewer is here, or what went wrong
}

// signInPage shows the sign-in form and the identity providers offered.
func (c *Console) signInPage(w http.ResponseWriter, r *http.Request) {
	next, _ := query(r, "next")
	why, _ := query(r, "why")
	msg := map[string]string{
		whyExpired:   "Your session ended (signed out, expired, or idle too long). Sign in again.",
		whyRevoked:   "Your session ended: the key it was made with no longer works (revoked, rotated or expired), or your principal was disabled or removed.",
		"signed-out": "You are signed out.",
	}[why]
	c.showSignIn(w, r, http.StatusOK, safeNext(next), msg)
}

// showSignIn renders the sign-in form with a fresh token bound to a fresh cookie.
func (c *Console) showSignIn(w http.ResponseWriter, r *http.Request, status int, next, msg string) {
	val := c.keys.newID()
	c.setCookie(w, r, &http.Cookie{Name: signInCookie, Value: val, Path: "/console/signin", MaxAge: int(SignInFlowLifetime.Seconds())})
	c.render(w, status, "signin.html", shell{Title: "Sign in", NodeID: c.cfg.Node.ID,
		Data: signInData{Token: c.keys.signInToken(val), Next: next, Providers: c.cfg.OIDC, Message: msg}})
}

// safeNext keeps a page to return to after sign-in only if it is a console path on
// this origin: never another site (an open redirect), never the sign-in itself.
func safeNext(next string) string {
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || !strings.HasPrefix(u.Path, Prefix) ||
		(u.Path != path.Clean(u.Path) && u.Path != path.Clean(u.Path)+"/") ||
		strings.HasPrefix(next, "//") || strings.Contains(next, "\\") || strings.HasPrefix(u.Path, "/console/signin") ||
		strings.HasPrefix(u.Path, "/console/oidc/") {
		return Prefix
	}
	return u.RequestURI()
}

// signInKey signs in with an API key: the key goes through the API's own
// authentication, the sign-in is recorded, and the session begins.
func (c *Console) signInKey(w http.ResponseWriter, r *http.Request) {
	f, err := readForm(w, r)
	if err != nil {
		c.renderError(w, r, nil, err)
		return
	}
	next := safeNext(f.get("next"))
	cookie, _ := cookieValue(r, signInCookie)
	if !c.keys.checkSignInToken(cookie, f.get("token")) {
		c.showSignIn(w, r, http.StatusForbidden, next, "The sign-in form expired or was not sent from this browser's console page. Try again.")
		return
	}
	key := strings.TrimSpace(f.get("key"))
	if !strings.HasPrefix(key, policy.APIKeyPrefix) {
		c.showSignIn(w, r, http.StatusBadRequest, next, "This form takes an API key (it starts with "+policy.APIKeyPrefix+"). Users of an identity provider sign in with it instead.")
		return
	}
	p, err := c.cfg.Pipeline.Authenticate(r.Context(), key)
	if err != nil {
		c.refused(w, r, next, err, "a key the node does not know")
		return
	}
	// The session keeps the key's hash, to check it on every request.
	h := sha256.Sum256([]byte(key))
	cur, name, ok := c.cfg.Principals.AuthenticateHash(h)
	if !ok || cur.ID != p.ID || cur.Tenant != p.Tenant {
		c.showSignIn(w, r, http.StatusUnauthorized, next, "That key stopped working while you signed in. Try again.")
		return
	}
	sess := &session{via: viaKey, keyHash: h, keyName: name, principal: *cur}
	if err := c.startSession(w, r, sess, c.cfg.Now().Add(SessionLifetime)); err != nil {
		c.renderError(w, r, nil, err)
		return
	}
	c.clearCookie(w, r, signInCookie, "/console/signin", http.SameSiteStrictMode)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// refused answers a credential the API's authentication turned down, recording it
// as the API does.
func (c *Console) refused(w http.ResponseWriter, r *http.Request, next string, err error, reason string) {
	var ie *invoke.Error
	if !errors.As(err, &ie) {
		c.renderError(w, r, nil, err)
		return
	}
	switch ie.Code {
	case invoke.CodeInvalidKey, invoke.CodeInvalidToken:
		if !c.cfg.Pipeline.RefuseAuthentication(r.Context(), r.RemoteAddr, reason) {
			c.renderError(w, r, nil, errorf(http.StatusServiceUnavailable, "the audit ledger could not record this sign-in attempt; nothing was done"))
			return
		}
		c.showSignIn(w, r, http.StatusUnauthorized, next, "Not signed in: "+ie.Message+".")
	case invoke.CodeUnmappedIdentity:
		c.showSignIn(w, r, http.StatusForbidden, next, "Not signed in: "+ie.Message+".")
	case invoke.CodeAuditFailed:
		c.renderError(w, r, nil, errorf(http.StatusServiceUnavailable, "the audit ledger could not record this sign-in; nothing was done"))
	default:
		c.showSignIn(w, r, http.StatusUnauthorized, next, "Not signed in: "+ie.Message+".")
	}
}

// startSession records the sign-in, then makes the session usable and gives the
// browser its cookie. A sign-in that cannot be recorded does not happen.
func (c *Console) startSession(w http.ResponseWriter, r *http.Request, sess *session, expires time.Time) error {
	now := c.cfg.Now()
	sess.created, sess.expires = now, expires
	sess.csrf = c.keys.newID()
	sess.addr = r.RemoteAddr
	idStr := c.keys.newID()
	id, _ := decodeID(idStr)
	ended, err := c.sessions.reserve(id, sess)
	if err != nil {
		return err
	}
	if ended != nil {
		c.recordSignOut(r.Context(), ended, "the principal signed in again and held the most sessions allowed (MaxSessionsPerPrincipal)")
	}
	detail := map[string]any{"via": sess.via, "expires": oar.FormatTime(expires), "address": oar.Bounded(r.RemoteAddr, oar.MaxOutsideValue),
		"roles": sess.principal.Roles}
	if sess.via == viaKey {
		detail["key"] = sess.keyName
	} else {
		detail["issuer"] = sess.issuer
	}
	if _, _, err := c.cfg.Append(context.WithoutCancel(r.Context()), &oar.Record{
		Tenant: sess.principal.Tenant, Actor: oar.Actor{ID: sess.principal.ID, Clearance: sess.principal.Clearance.String()},
		Action: oar.ActionConsoleSignIn, Resource: "console/session/" + sess.tag,
		Decision: &oar.Decision{Effect: "allow", Policies: []string{"console-" + sess.via}}, Detail: mustJSON(detail),
	}); err != nil {
		c.sessions.drop(sess)
		c.cfg.Log.Error("console: audit sign-in", "err", err)
		return errorf(http.StatusServiceUnavailable, "the audit ledger could not record this sign-in, so it did not happen")
	}
	c.sessions.activate(sess)
	c.setCookie(w, r, &http.Cookie{Name: sessionCookie, Value: idStr, Path: Prefix, Expires: expires,
		MaxAge: int(expires.Sub(now).Seconds())})
	return nil
}

// signOut ends the session. The end is recorded; if the ledger cannot take the record
// the session ends all the same (signing out must always work) and the node logs it.
func (c *Console) signOut(w http.ResponseWriter, v *View) error {
	f, err := readForm(w, v.r)
	if err != nil {
		return err
	}
	if !v.sess.checkCSRF(f.get("csrf")) {
		return errorf(http.StatusForbidden, "this form is not from your session (its token does not match): reload the page and try again")
	}
	val, _ := cookieValue(v.r, sessionCookie)
	id, _ := decodeID(val)
	if sess := c.sessions.remove(id); sess != nil {
		c.recordSignOut(v.r.Context(), sess, "signed out")
	}
	c.clearCookie(w, v.r, sessionCookie, Prefix, http.SameSiteStrictMode)
	http.Redirect(w, v.r, "/console/signin?why=signed-out", http.StatusSeeOther)
	return nil
}

// recordSignOut records the end of a session.
func (c *Console) recordSignOut(ctx context.Context, sess *session, why string) {
	p := c.sessions.principalOf(sess)
	if _, _, err := c.cfg.Append(context.WithoutCancel(ctx), &oar.Record{
		Tenant: p.Tenant, Actor: oar.Actor{ID: p.ID, Clearance: p.Clearance.String()},
		Action: oar.ActionConsoleSignOut, Resource: "console/session/" + sess.tag,
		Detail: mustJSON(map[string]any{"why": why, "address": oar.Bounded(sess.addr, oar.MaxOutsideValue)}),
	}); err != nil {
		c.cfg.Log.Error("console: audit sign-out", "err", err)
	}
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
