package console

import (
	"crypto/rand"
	"strings"
	"testing"
	"time"
)

func testKeys(t testing.TB) *keys {
	t.Helper()
	k, err := newKeys(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestIDs(t *testing.T) {
	k := testKeys(t)
	id := k.newID()
	if b, ok := decodeID(id); !ok || len(b) != idBytes {
		t.Fatalf("a new id does not decode: %q", id)
	}
	if k.newID() == id {
		t.Fatal("two ids are equal")
	}
	for _, bad := range []string{"", id[:42], id + "A", strings.Replace(id, id[:1], "*", 1), strings.Repeat("=", 43)} {
		if _, ok := decodeID(bad); ok {
			t.Errorf("%q decoded as an id", bad)
		}
	}
}

// The sign-in form's token is bound to its cookie and to this process's key.
func TestSignInToken(t *testing.T) {
	k, other := testKeys(t), testKeys(t)
	cookie := k.newID()
	tok := k.signInToken(cookie)
	if !k.checkSignInToken(cookie, tok) {
		t.Fatal("the token of a cookie does not check")
	}
	for name, c := range map[string]struct{ cookie, token string }{
		"another cookie":        {k.newID(), tok},
		"no cookie":             {"", tok},
		"another process's key": {cookie, other.signInToken(cookie)},
		"no token":              {cookie, ""},
		"not an id":             {"x", k.signInToken("x")},
	} {
		if k.checkSignInToken(c.cookie, c.token) {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestFlowCookie(t *testing.T) {
	k := testKeys(t)
	now := time.Unix(1_800_000_000, 0)
	f := &flow{Issuer: "corp", State: k.newID(), Nonce: k.newID(), Verifier: "v", Next: "/console/audit", Expires: now.Add(time.Minute).Unix()}
	sealed := k.sealFlow(f)
	got, err := k.openFlow(sealed, now)
	if err != nil || *got != *f {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	if strings.Contains(sealed, f.State) || strings.Contains(sealed, "corp") {
		t.Fatal("the sealed flow shows its contents")
	}
	if _, err := k.openFlow(sealed, now.Add(time.Minute)); err == nil {
		t.Fatal("an expired flow opened")
	}
	if _, err := testKeys(t).openFlow(sealed, now); err == nil {
		t.Fatal("another process's flow opened")
	}
	b := []byte(sealed)
	b[len(b)/2] ^= 1
	if _, err := k.openFlow(string(b), now); err == nil {
		t.Fatal("a tampered flow opened")
	}
	empty := k.sealFlow(&flow{Expires: now.Add(time.Minute).Unix()})
	if _, err := k.openFlow(empty, now); err == nil {
		t.Fatal("a flow without state, nonce or verifier opened")
	}
}
