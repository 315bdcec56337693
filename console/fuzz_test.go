package console

import (
	"testing"
	"time"
)

// Everything a browser or an identity provider sends is parsed by these functions;
// none may panic, and what they accept must be within the limits.

func FuzzParseForm(f *testing.F) {
	for _, s := range []string{"csrf=abc&op=disable", "a=1&a=2", "key=%zz", "k=%ff", "", "&&&=", "x=" + string(make([]byte, 40))} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		form, err := parseForm(body)
		if err != nil {
			return
		}
		if len(form) > MaxFormFields {
			t.Fatalf("%d fields accepted", len(form))
		}
		for k, v := range form {
			if len(k) > MaxFieldBytes || len(v) > MaxFieldBytes {
				t.Fatalf("a field over MaxFieldBytes accepted: %q", k)
			}
		}
	})
}

func FuzzCookies(f *testing.F) {
	k := testKeys(f)
	now := time.Unix(1_800_000_000, 0)
	f.Add(k.newID(), k.sealFlow(&flow{Issuer: "corp", State: "s", Nonce: "n", Verifier: "v", Expires: now.Unix() + 60}))
	f.Add("", "")
	f.Add("%%%", "AAAA")
	f.Fuzz(func(t *testing.T, id, sealed string) {
		if b, ok := decodeID(id); ok && len(b) != idBytes {
			t.Fatalf("an id of %d bytes", len(b))
		}
		k.checkSignInToken(id, sealed)
		if fl, err := k.openFlow(sealed, now); err == nil && (fl.State == "" || fl.Nonce == "" || fl.Verifier == "") {
			t.Fatalf("an incomplete flow opened: %+v", fl)
		}
	})
}

func FuzzIDClaims(f *testing.F) {
	f.Add(jwtWith(map[string]any{"nonce": "n", "aud": "c", "exp": 1}))
	f.Add(jwtWith(map[string]any{"aud": []any{"c", 3}}))
	f.Add("a.b.c")
	f.Fuzz(func(t *testing.T, token string) {
		if c, err := parseIDClaims(token); err == nil {
			c.check("c", "n", time.Unix(0, 0))
		}
	})
}

func FuzzSafeNext(f *testing.F) {
	for _, s := range []string{"/console/audit", "//evil", "https://x/console/", "/console/../x", "/console/%2e%2e/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, next string) {
		got := safeNext(next)
		if got != Prefix && (len(got) < len(Prefix) || got[:len(Prefix)] != Prefix || got[:2] == "//") {
			t.Fatalf("safeNext(%q) = %q, not a console path", next, got)
		}
	})
}
