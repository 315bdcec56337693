package console

import (
	"fmt"
	"testing"
	"time"

	"github.com/sios-project/sios/policy"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newTestSession(k *keys, s *sessions, id string, lifetime time.Duration) ([]byte, *session, *session, error) {
	raw, _ := decodeID(k.newID())
	sess := &session{principal: policy.Principal{ID: id, Tenant: "hospital", Clearance: policy.Official},
		created: s.now(), expires: s.now().Add(lifetime), csrf: k.newID()}
	ended, err := s.reserve(raw, sess)
	if err == nil {
		s.activate(sess)
	}
	return raw, sess, ended, err
}

func TestSessionLifetime(t *testing.T) {
	k, c := testKeys(t), &clock{time.Unix(1_800_000_000, 0)}
	s := newSessions(c.now)
	raw, sess, _, err := newTestSession(k, s, "dr.a", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if got, _, ok := s.get(raw); !ok || got != sess {
		t.Fatal("a new session is not found")
	}
	other, _ := decodeID(k.newID())
	if _, _, ok := s.get(other); ok {
		t.Fatal("an unknown id found a session")
	}
	// Used within SessionIdle, it lives on; idle longer, it ends.
	c.t = c.t.Add(SessionIdle - time.Second)
	if _, _, ok := s.get(raw); !ok {
		t.Fatal("a session used within SessionIdle ended")
	}
	c.t = c.t.Add(SessionIdle)
	if _, _, ok := s.get(raw); ok {
		t.Fatal("an idle session lived on")
	}
	if s.count() != 0 {
		t.Fatal("an idle session was kept")
	}
	// However busy, a session ends at its expiry.
	raw, _, _, _ = newTestSession(k, s, "dr.a", 3*time.Minute)
	for range 3 {
		c.t = c.t.Add(time.Minute)
		s.get(raw)
	}
	if _, _, ok := s.get(raw); ok {
		t.Fatal("a session outlived its expiry")
	}
}

func TestSessionNotUsableUntilRecorded(t *testing.T) {
	k, c := testKeys(t), &clock{time.Unix(1_800_000_000, 0)}
	s := newSessions(c.now)
	raw, _ := decodeID(k.newID())
	sess := &session{principal: policy.Principal{ID: "dr.a", Tenant: "t"}, expires: c.t.Add(time.Hour)}
	if _, err := s.reserve(raw, sess); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := s.get(raw); ok {
		t.Fatal("a session whose sign-in is not recorded yet is usable")
	}
	s.drop(sess)
	s.activate(sess)
	if _, _, ok := s.get(raw); ok {
		t.Fatal("a dropped session came back")
	}
}

func TestSessionLimits(t *testing.T) {
	k, c := testKeys(t), &clock{time.Unix(1_800_000_000, 0)}
	s := newSessions(c.now)
	var first []byte
	for i := range MaxSessionsPerPrincipal {
		raw, _, ended, err := newTestSession(k, s, "dr.a", time.Hour)
		if err != nil || ended != nil {
			t.Fatalf("session %d: %v, ended %v", i, err, ended)
		}
		if i == 0 {
			first = raw
		}
		c.t = c.t.Add(time.Second)
	}
	// One more sign-in ends the principal's oldest session.
	_, _, ended, err := newTestSession(k, s, "dr.a", time.Hour)
	if err != nil || ended == nil {
		t.Fatalf("over MaxSessionsPerPrincipal: %v, ended %v", err, ended)
	}
	if _, _, ok := s.get(first); ok {
		t.Fatal("the oldest session lives on")
	}
	// The store as a whole holds MaxSessions; then sign-ins are refused by name.
	for i := s.count(); i < MaxSessions; i++ {
		if _, _, _, err := newTestSession(k, s, fmt.Sprintf("p%d", i), time.Hour); err != nil {
			t.Fatalf("session %d of %d: %v", i, MaxSessions, err)
		}
	}
	_, _, _, err = newTestSession(k, s, "one-too-many", time.Hour)
	if err != errTooManySessions {
		t.Fatalf("over MaxSessions: %v", err)
	}
	// Expired sessions make room.
	c.t = c.t.Add(2 * time.Hour)
	if _, _, _, err := newTestSession(k, s, "later", time.Hour); err != nil {
		t.Fatalf("after the others expired: %v", err)
	}
	if n := s.count(); n != 1 {
		t.Fatalf("%d sessions kept after the others expired", n)
	}
}

func TestSessionCSRF(t *testing.T) {
	k := testKeys(t)
	sess := &session{csrf: k.newID()}
	if !sess.checkCSRF(sess.csrf) {
		t.Fatal("the session's own token refused")
	}
	for _, bad := range []string{"", k.newID(), sess.csrf[:10], sess.csrf + "x"} {
		if sess.checkCSRF(bad) {
			t.Errorf("%q accepted", bad)
		}
	}
}
