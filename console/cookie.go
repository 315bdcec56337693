package console

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// The console's cookies. Each is HttpOnly and scoped to the console's paths; none holds
// anything a thief could use elsewhere: the session cookie is a random id that only
// this process knows, the sign-in cookie a random value, and the OIDC flow cookie is
// sealed (AES-256-GCM) under a key that never leaves this process.
const (
	// sessionCookie holds the session id: SameSite=Strict, Path=/console/.
	sessionCookie = "sios_console"
	// signInCookie holds the random value the sign-in form's token is bound to.
	signInCookie = "sios_console_signin"
	// flowCookie holds an OIDC sign-in in progress: SameSite=Lax, because the
	// identity provider's redirect back is a cross-site navigation, and Path limited
	// to the callback.
	flowCookie = "sios_console_oidc"
)

// idBytes is the size of a session id and of the other random values.
const idBytes = 32

// keys are this process's secrets: they are made at start and die with it, so a
// restart signs everyone out and abandons sign-ins in progress.
type keys struct {
	mac  []byte      // binds the sign-in form's token to its cookie
	aead cipher.AEAD // seals OIDC flow cookies
	rand io.Reader
}

func newKeys(rnd io.Reader) (*keys, error) {
	k := &keys{mac: make([]byte, 32), rand: rnd}
	aesKey := make([]byte, 32)
	if _, err := io.ReadFull(rnd, k.mac); err != nil {
		return nil, fmt.Errorf("console keys: %v", err)
	}
	if _, err := io.ReadFull(rnd, aesKey); err != nil {
		return nil, fmt.Errorf("console keys: %v", err)
	}
	block, err := aes.NewCipher(aesKey)
	if err != nil {
		return nil, err
	}
	if k.aead, err = cipher.NewGCM(block); err != nil {
		return nil, err
	}
	return k, nil
}

// newID returns a random value: idBytes, base64url without padding (43 characters).
func (k *keys) newID() string {
	b := make([]byte, idBytes)
	if _, err := io.ReadFull(k.rand, b); err != nil {
		panic("console: no randomness: " + err.Error()) // crypto/rand does not fail
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// decodeID checks a random value as newID makes them and returns its bytes.
func decodeID(s string) ([]byte, bool) {
	if len(s) != base64.RawURLEncoding.EncodedLen(idBytes) {
		return nil, false
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != idBytes {
		return nil, false
	}
	return b, true
}

// cookieValue returns the value of the named cookie if it is present and within
// MaxCookieBytes.
func cookieValue(r *http.Request, name string) (string, bool) {
	c, err := r.Cookie(name)
	if err != nil || len(c.Value) > MaxCookieBytes {
		return "", false
	}
	return c.Value, true
}

// signInToken is the sign-in form's token for the value in its cookie.
func (k *keys) signInToken(cookie string) string {
	m := hmac.New(sha256.New, k.mac)
	io.WriteString(m, "sios-console-signin\n"+cookie)
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// checkSignInToken says whether a posted token belongs to the cookie's value.
func (k *keys) checkSignInToken(cookie, token string) bool {
	if _, ok := decodeID(cookie); !ok {
		return false
	}
	return hmac.Equal([]byte(k.signInToken(cookie)), []byte(token))
}

// flow is an OIDC sign-in in progress, carried by the browser in the sealed flow
// cookie: nothing is kept on the node, so sign-ins in progress cost it no memory.
type flow struct {
	Issuer   string `json:"i"` // the issuer's name
	State    string `json:"s"`
	Nonce    string `json:"n"`
	Verifier string `json:"v"` // the PKCE code verifier
	Next     string `json:"x,omitempty"`
	Expires  int64  `json:"e"` // Unix seconds
}

// flowAD is the additional data of a sealed flow: a sealed value of another purpose
// never opens as a flow.
var flowAD = []byte("sios-console-oidc-flow/1")

// sealFlow seals a flow for its cookie.
func (k *keys) sealFlow(f *flow) string {
	pt, _ := json.Marshal(f)
	nonce := make([]byte, k.aead.NonceSize())
	if _, err := io.ReadFull(k.rand, nonce); err != nil {
		panic("console: no randomness: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(k.aead.Seal(nonce, nonce, pt, flowAD))
}

var errFlow = errors.New("this browser holds no sign-in in progress that this node started, or it expired; start again")

// openFlow opens a flow cookie sealed by this process and not expired at now.
func (k *keys) openFlow(value string, now time.Time) (*flow, error) {
	if len(value) > MaxCookieBytes {
		return nil, errFlow
	}
	b, err := base64.RawURLEncoding.DecodeString(value)
	if err != nil || len(b) < k.aead.NonceSize()+k.aead.Overhead() {
		return nil, errFlow
	}
	ns := k.aead.NonceSize()
	pt, err := k.aead.Open(nil, b[:ns], b[ns:], flowAD)
	if err != nil {
		return nil, errFlow
	}
	var f flow
	dec := json.NewDecoder(strings.NewReader(string(pt)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil || f.Issuer == "" || f.State == "" || f.Nonce == "" || f.Verifier == "" {
		return nil, errFlow
	}
	if now.Unix() >= f.Expires {
		return nil, errFlow
	}
	return &f, nil
}

// setCookie sets a console cookie: HttpOnly, Secure when the request came over TLS or
// the console sits behind a TLS proxy.
func (c *Console) setCookie(w http.ResponseWriter, r *http.Request, ck *http.Cookie) {
	ck.HttpOnly = true
	ck.Secure = r.TLS != nil || c.cfg.SecureCookies
	if ck.SameSite == 0 {
		ck.SameSite = http.SameSiteStrictMode
	}
	if ck.Path == "" {
		ck.Path = Prefix
	}
	http.SetCookie(w, ck)
}

// clearCookie removes a console cookie.
func (c *Console) clearCookie(w http.ResponseWriter, r *http.Request, name, path string, site http.SameSite) {
	c.setCookie(w, r, &http.Cookie{Name: name, Value: "", Path: path, MaxAge: -1, SameSite: site})
}
