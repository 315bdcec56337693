package console

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
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
