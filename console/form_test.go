package console

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sios-project/sios/jcs"
	"github.com/sios-project/sios/oar"
)

func TestParseForm(t *testing.T) {
	f, err := parseForm("csrf=abc&op=disable&id=dr.x&roles=a%2Cb")
	if err != nil || f.get("op") != "disable" || f.get("roles") != "a,b" || f.get("missing") != "" {
		t.Fatalf("%v %v", f, err)
	}
	many := strings.Repeat("a=1&", 0)
	for i := range MaxFormFields + 1 {
		many += "f" + strings.Repeat("x", i) + "=1&"
	}
	cases := map[string]struct{ body, want string }{
		"repeated field":  {"op=a&op=b", "sent 2 times"},
		"too many fields": {many, "MaxFormFields"},
		"long value":      {"key=" + strings.Repeat("k", MaxFieldBytes+1), "MaxFieldBytes"},
		"bad escape":      {"key=%zz", "not valid URL encoding"},
		"not UTF-8":       {"key=%ff%fe", "not valid UTF-8"},
		"too large":       {strings.Repeat("k", MaxFormBytes+1), "MaxFormBytes"},
	}
	for name, c := range cases {
		if _, err := parseForm(c.body); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error mentioning %q", name, err, c.want)
		}
	}
}

func TestReadFormWantsAForm(t *testing.T) {
	r := httptest.NewRequest(http.MethodPost, "/console/signin", strings.NewReader(`{"key":"x"}`))
	r.Header.Set("Content-Type", "application/json")
	if _, err := readForm(httptest.NewRecorder(), r); err == nil || err.(*Error).Status != http.StatusUnsupportedMediaType {
		t.Fatalf("a JSON body: %v", err)
	}
	r = httptest.NewRequest(http.MethodPost, "/console/signin", strings.NewReader(strings.Repeat("a", MaxFormBytes+10)))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if _, err := readForm(httptest.NewRecorder(), r); err == nil || err.(*Error).Status != http.StatusRequestEntityTooLarge {
		t.Fatalf("a large body: %v", err)
	}
}

// After sign-in the browser goes back only to a console page of this origin.
func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{
		"/console/audit?actor=x":        "/console/audit?actor=x",
		"/console/audit/record/7":       "/console/audit/record/7",
		"":                              "/console/",
		"https://evil.example/console/": "/console/",
		"//evil.example/console/":       "/console/",
		"/\\evil.example/console/":      "/console/",
		"/v1/models":                    "/console/",
		"/console/signin?next=x":        "/console/",
		"/console/oidc/callback?code=1": "/console/",
		"javascript:alert(1)":           "/console/",
		"/console/../v1/models":         "/console/",
		"/console/./audit":              "/console/",
		"/console/":                     "/console/",
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseLifetime(t *testing.T) {
	for s, want := range map[string]time.Duration{"30d": 30 * 24 * time.Hour, "12h": 12 * time.Hour, "90m": 90 * time.Minute, "45s": 45 * time.Second,
		" 365d ": 365 * 24 * time.Hour} {
		if d, err := parseLifetime(s); err != nil || d != want {
			t.Errorf("parseLifetime(%q) = %s, %v; want %s", s, d, err, want)
		}
	}
	for _, s := range []string{"366d", "0d", "-1d", "1.5d", "d", "", "7", "7w", "8761h"} {
		if d, err := parseLifetime(s); err == nil {
			t.Errorf("parseLifetime(%q) = %s, want a refusal", s, d)
		} else if !strings.Contains(err.Error(), "MaxGrantLifetime") {
			t.Errorf("parseLifetime(%q): %v does not name the limit", s, err)
		}
	}
}

// maybeOutcome passes every decision.outcome record in canonical form, and no other
// record.
func TestMaybeOutcome(t *testing.T) {
	for _, c := range []struct {
		rec  oar.Record
		want bool
	}{
		{oar.Record{Action: oar.ActionDecisionOutcome, Resource: "decision/x"}, true},
		{oar.Record{Action: oar.ActionDecisionRequest, Resource: "decision/x", Detail: json.RawMessage(`{"next":"decision.outcome"}`)}, false},
		{oar.Record{Action: "decision.outcome.other"}, false},
	} {
		c.rec.V, c.rec.Kind, c.rec.Time, c.rec.Actor = oar.Version, oar.KindRecord, "2026-01-01T00:00:00Z", oar.Actor{ID: "a"}
		raw, err := jcs.Marshal(c.rec)
		if err != nil {
			t.Fatal(err)
		}
		if got := maybeOutcome(raw); got != c.want {
			t.Errorf("%s: maybeOutcome = %v\n%s", c.rec.Action, got, raw)
		}
	}
}
