package oar_test

import (
	"strings"
	"testing"

	"github.com/sios-project/sios/oar"
)

func TestParseRejectsAmbiguousEntries(t *testing.T) {
	v := vectorSeeds(t)
	rec := v.Records[0].Canonical
	seal := v.Seal.Canonical
	cases := []struct {
		name, entry, want string
	}{
		{"differently cased member", strings.Replace(rec, `"action"`, `"Action"`, 1), "not part of oar/1"},
		{"unknown member", strings.Replace(rec, `{"action"`, `{"aaa":1,"action"`, 1), "not part of oar/1"},
		{"extra seal member", strings.Replace(seal, `{"count"`, `{"comment":"x","count"`, 1), "not part of oar/1"},
		{"uppercase digest", strings.Replace(rec, v.Records[0].Canonical[strings.Index(rec, `"sha256":"`)+10:strings.Index(rec, `"sha256":"`)+12],
			strings.ToUpper(v.Records[0].Canonical[strings.Index(rec, `"sha256":"`)+10:strings.Index(rec, `"sha256":"`)+12]), 1), ""},
		{"non-UTC time", strings.Replace(rec, `Z"`, `+00:00"`, 1), "RFC 3339 UTC"},
		{"not canonical", " " + rec, "canonical"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := oar.Parse([]byte(c.entry))
			if err == nil {
				t.Fatalf("accepted %s", c.entry)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not mention %q", err, c.want)
			}
		})
	}
}
