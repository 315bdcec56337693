package console

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/sios-project/sios/policy"
)

// A session is what a sign-in leaves on the node: the principal, how they signed in,
// when it ends, and the synchronizer token its forms carry. The browser holds only
// the session's random id; the node keys sessions by the id's SHA-256. An API-key
// session keeps the key's SHA-256 (never the key) and is checked against the principal
// store on every request, so a key revoked, rotated or expired, or a principal
// disabled or removed, ends it at once.
type session struct {
	key     [32]byte // SHA-256 of the id: the map key
	tag     string   // the first 8 hex digits of key: names the session in records
	via     string   // "api-key" or "oidc"
	keyHash [32]byte // an API-key session's key, by its SHA-256
	keyName string   // that key's name
	issuer  string   // an OIDC session's issuer name
	csrf    string   // the synchronizer token
	addr    string   // the client address at sign-in
	created time.Time
	expires time.Time

	// Guarded by sessions.mu.
	principal policy.Principal
	lastSeen  time.Time
	ready     bool // its sign-in is recorded: until then it cannot be used
}

// sessions is the console's session store, bounded by MaxSessions and
// MaxSessionsPerPrincipal.
type sessions struct {
	now func() time.Time

	mu   sync.Mutex
	byID map[[32]byte]*session // guarded by mu
}

func newSessions(now func() time.Time) *sessions {
	return &sessions{now: now, byID: map[[32]byte]*session{}}
}

// errTooManySessions refuses a sign-in when the store is full.
var errTooManySessions = errorf(http.StatusServiceUnavailable,
	"the console holds %d sessions, its limit (MaxSessions); sign in again once others have signed out or expired", MaxSessions)

// reserve adds a session not yet usable (its sign-in is being recorded) for the raw
// id. If the principal already holds MaxSessionsPerPrincipal sessions, its oldest is
// ended and returned, for its end to be recorded.
func (s *sessions) reserve(id []byte, sess *session) (ended *session, err error) {
	sess.key = sha256.Sum256(id)
	sess.tag = hex.EncodeToString(sess.key[:4])
	now := s.now()
	sess.lastSeen = now
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.byID) >= MaxSessions {
		s.pruneLocked(now)
	}
	var mine []*session
	for _, o := range s.byID {
		if o.principal.ID == sess.principal.ID && o.principal.Tenant == sess.principal.Tenant {
			mine = append(mine, o)
		}
	}
	if len(mine) >= MaxSessionsPerPrincipal {
		ended = slices.MinFunc(mine, func(a, b *session) int { return a.created.Compare(b.created) })
		delete(s.byID, ended.key)
	} else if len(s.byID) >= MaxSessions {
		return nil, errTooManySessions
	}
	s.byID[sess.key] = sess
	return ended, nil
}

// activate makes a reserved session usable; drop removes it.
func (s *sessions) activate(sess *session) {
	s.mu.Lock()
	sess.ready = true
	s.mu.Unlock()
}

func (s *sessions) drop(sess *session) {
	s.mu.Lock()
	delete(s.byID, sess.key)
	s.mu.Unlock()
}

// get returns the usable, unexpired session of the raw id and marks it used. A
// session expired or idle too long is removed.
func (s *sessions) get(id []byte) (*session, policy.Principal, bool) {
	key := sha256.Sum256(id)
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.byID[key]
	if !ok || !sess.ready {
		return nil, policy.Principal{}, false
	}
	if !now.Before(sess.expires) || now.Sub(sess.lastSeen) >= SessionIdle {
		delete(s.byID, key)
		return nil, policy.Principal{}, false
	}
	sess.lastSeen = now
	return sess, sess.principal, true
}

// update replaces a session's principal (its clearance or roles changed in the store).
func (s *sessions) update(sess *session, p policy.Principal) {
	s.mu.Lock()
	sess.principal = p
	s.mu.Unlock()
}

// principalOf is a session's principal as of now.
func (s *sessions) principalOf(sess *session) policy.Principal {
	s.mu.Lock()
	defer s.mu.Unlock()
	return sess.principal
}

// remove ends the session of the raw id and returns it (nil if there was none).
func (s *sessions) remove(id []byte) *session {
	key := sha256.Sum256(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.byID[key]
	if !ok {
		return nil
	}
	delete(s.byID, key)
	return sess
}

// count is the number of sessions held.
func (s *sessions) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.byID)
}

// pruneLocked removes expired and idle sessions.
func (s *sessions) pruneLocked(now time.Time) {
	for k, o := range s.byID {
		if o.ready && (!now.Before(o.expires) || now.Sub(o.lastSeen) >= SessionIdle) {
			delete(s.byID, k)
		}
	}
}

// checkCSRF says whether a posted token is the session's.
func (sess *session) checkCSRF(token string) bool {
	return len(token) == len(sess.csrf) && subtle.ConstantTimeCompare([]byte(token), []byte(sess.csrf)) == 1
}

// describe is how the session is shown to its user.
func (sess *session) describe() string {
	if sess.via == viaKey {
		return fmt.Sprintf("API key %q", sess.keyName)
	}
	return "identity provider " + sess.issuer
}

const (
	viaKey  = "api-key"
	viaOIDC = "oidc"
)
