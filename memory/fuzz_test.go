package memory

import (
	"context"
	"testing"

	"github.com/sios-project/sios/policy"
)

// FuzzSearchQuery: no query text, subject, clearance or limit makes Search panic, fail
// unexpectedly, or return another tenant's memory or one above the clearance.
func FuzzSearchQuery(f *testing.F) {
	ctx := context.Background()
	s := openStore(f, f.TempDir())
	defer s.Close()
	var adds []NewMemory
	for _, tenant := range []string{"mine", "theirs"} {
		for _, l := range policy.Levels() {
			for _, text := range []string{"alpha beta gamma", "ALPHA \"quoted\" OR NOT near(1)", "δέλτα 東京 — émigré", "a * ^ : ( ) { } - + 0x1f"} {
				adds = append(adds, NewMemory{Tenant: tenant, Subject: "s-" + l.String(), Classification: l, Source: "fuzz", Text: text})
			}
		}
	}
	if _, err := s.AddBatch(ctx, adds); err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{"alpha", "ALPHA OR beta", `"quoted"`, "NOT near(1)", "*", "^alpha", "scope : x", "東京", "", "\x00", "\xff\xfe", "tokens : (a OR b)", "a AND", "(((("} {
		f.Add(seed, "", 2, 10)
	}
	f.Add("alpha", "s-SECRET", 4, 0)
	f.Fuzz(func(t *testing.T, text, subject string, clearance, limit int) {
		c := policy.Level(clearance%4 + 1)
		if clearance < 0 {
			c = policy.Level(-(clearance % 4) + 1)
		}
		res, err := s.Search(ctx, Query{Tenant: "mine", Subject: subject, Clearance: c, Text: text, Limit: limit})
		if err != nil {
			// Only input the API documents as invalid may fail.
			if len(text) > MaxQueryBytes || len(subject) > MaxNameBytes || !validUTF8(subject) {
				return
			}
			t.Fatalf("Search(%q, subject %q, %v): %v", text, subject, c, err)
		}
		max := limit
		if max <= 0 {
			max = DefaultLimit
		}
		if len(res) > min(max, MaxLimit) {
			t.Fatalf("%d results for limit %d", len(res), limit)
		}
		for _, r := range res {
			if r.Tenant != "mine" || r.Classification > c || (subject != "" && r.Subject != subject) {
				t.Fatalf("result %+v for clearance %v subject %q", r, c, subject)
			}
		}
	})
}

func validUTF8(s string) bool { return checkName("x", s, false) == nil }
