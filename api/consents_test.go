package api

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/sios-project/sios/consent"
	"github.com/sios-project/sios/invoke"
)

func TestParseConsentHeader(t *testing.T) {
	grant := []byte(`{"id":"00112233445566778899aabbccddeeff","v":"consent-grant/1"}`)
	b, err := ParseConsentHeader([]string{base64.RawURLEncoding.EncodeToString(grant)})
	if err != nil || string(b) != string(grant) {
		t.Fatalf("%s %v", b, err)
	}
	if b, err := ParseConsentHeader(nil); b != nil || err != nil {
		t.Fatalf("no header: %s %v", b, err)
	}
	for name, v := range map[string][]string{
		"twice":     {"e30", "e30"},
		"padded":    {base64.URLEncoding.EncodeToString([]byte("ab"))},
		"standard":  {base64.StdEncoding.EncodeToString([]byte{0xfb, 0xff})},
		"too long":  {strings.Repeat("A", invoke.MaxConsentHeader+1)},
		"empty":     {""},
		"not ascii": {"é"},
	} {
		_, err := ParseConsentHeader(v)
		var ae *Error
		if !errors.As(err, &ae) || ae.Status != 400 || ae.Code != "consent_malformed" {
			t.Errorf("%s: %v", name, err)
		}
	}
	// The largest grant fits.
	if _, err := ParseConsentHeader([]string{base64.RawURLEncoding.EncodeToString(make([]byte, consent.MaxGrantSize))}); err != nil {
		t.Fatalf("a grant of MaxGrantSize bytes: %v", err)
	}
}

// FuzzParseConsentHeader: a header value is refused, or is a grant's bytes within
// MaxGrantSize that the grant parser then judges (and never panics on).
func FuzzParseConsentHeader(f *testing.F) {
	f.Add(base64.RawURLEncoding.EncodeToString([]byte(`{"v":"consent-grant/1"}`)))
	f.Add("e30")
	f.Add("=")
	f.Add(" e30 ")
	f.Fuzz(func(t *testing.T, v string) {
		b, err := ParseConsentHeader([]string{v})
		if err != nil {
			return
		}
		if len(b) == 0 || len(b) > consent.MaxGrantSize {
			t.Fatalf("accepted %d bytes", len(b))
		}
		if _, err := consent.Parse(b); err != nil && consent.CodeOf(err) != consent.CodeMalformed {
			t.Fatalf("the grant parser refused with %v", err)
		}
	})
}
