package brain_test

import (
	"strings"
	"testing"

	"github.com/sios-project/sios/brain"
)

func TestRoute(t *testing.T) {
	c := loadEmbedded(t)
	for _, tc := range []struct {
		name, prompt, want, reason string
	}{
		{"clinical coding", "code this discharge summary ICD-10", "clinical-coding", `"discharge" (keyword) 4.28, "icd" (keyword) 4.28`},
		{"contract clause", "Review the indemnity clause in this supplier contract.", "legal-contracts", `"indemnity" (keyword) 4.28, "clause" (keyword) 4.28, "contract" (keyword) 4.28`},
		{"drug name, no other pharmacology word", "What are the side effects of metformin for a patient with kidney disease?", "pharmacology", `"metformin" (keyword)`},
		{"money laundering", "Is this transaction suspicious? Check KYC and sanctions.", "anti-money-laundering", `"sanctions" (keyword)`},
		{"export licence", "Draft an ITAR export licence application for dual-use parts", "export-control", `"itar" (keyword)`},
		{"triage", "Patient with chest pain and suspected sepsis, please triage", "clinical-triage", `"sepsis" (keyword)`},
		{"tax", "What is the VAT treatment here? Cite HMRC.", "tax", `"hmrc" (keyword)`},
		{"plural keyword", "Which of these CVEs does the ransomware exploit?", "cyber-threat", `"cves" (keyword) 4.28, "ransomware" (keyword) 4.28, "exploit" (keyword) 4.28`},
		{"case and punctuation", "GDPR/DPIA!!", "data-protection", "score 8.56"},
		{"stemmed prose", "Which prescribing interactions matter?", "pharmacology", `"interactions"`},
		{"title words", "defence logistics", "defence-logistics", "runner-up defence-procurement"},
		{"no match", "What's the weather like in Leeds?", "summariser", "no domain brain's words occur in the prompt; routed to the default brain summariser"},
		{"empty prompt", "", "summariser", "no domain brain's words"},
		{"request words only", "Summarise this report", "summariser", "no domain brain's words"},
		{"operational words only", "summarise, redact, classify and calculate", "summariser", "no domain brain's words"},
		{"keyword inside a word does not match", "taxonomy encoding", "summariser", "no domain brain's words"},
		{"below the minimum score", "Check the system", "summariser", `the best match, audit-assurance (score 2.03: "system" (example) 2.03), is below the minimum score 2.5; routed to the default brain summariser`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, reason := c.Route(tc.prompt)
			if b.ID != tc.want || !strings.Contains(reason, tc.reason) {
				t.Errorf("Route(%q) = %s, %q\nwant %s, reason containing %q", tc.prompt, b.ID, reason, tc.want, tc.reason)
			}
			if b.ID != brain.DefaultRoute && (b.Kind != brain.KindDomain || !strings.HasPrefix(reason, "routed to "+b.ID+" by lexical score ")) {
				t.Errorf("routed to %s (%s) with reason %q", b.ID, b.Kind, reason)
			}
			if strings.Contains(reason, "\n") {
				t.Errorf("reason is not one line: %q", reason)
			}
		})
	}
}

// TestRouteTiesGoToTheLowestID: two brains with the same vocabulary score the same,
// and the one whose id sorts first wins, whatever order the files load in.
func TestRouteTiesGoToTheLowestID(t *testing.T) {
	twin := func(id string) string {
		return "id: " + id + "\nkind: domain\ntitle: Okapi husbandry\nsystem_prompt: Answer.\nclassification: OFFICIAL\nkeywords: [okapi]\n"
	}
	c, err := brain.Load(writeBrains(t, map[string]string{"a.yaml": twin("zoo-b"), "b.yaml": twin("zoo-a")}))
	if err != nil {
		t.Fatal(err)
	}
	b, reason := c.Route("okapi feeding")
	if b.ID != "zoo-a" || !strings.Contains(reason, "tied with zoo-b (score") || !strings.Contains(reason, "ties go to the lowest id") {
		t.Errorf("got %s: %s", b.ID, reason)
	}
}

// TestEveryKeywordRoutesAlone: a keyword is an operator's statement of what a brain
// is for, so each embedded keyword, alone, routes to a brain that lists it (or its
// singular form).
func TestEveryKeywordRoutesAlone(t *testing.T) {
	c := loadEmbedded(t)
	for _, b := range c.All() {
		if b.Kind != brain.KindDomain {
			continue
		}
		for _, k := range b.Keywords {
			got, reason := c.Route(k)
			forms := []string{k, strings.TrimSuffix(k, "s"), strings.TrimSuffix(k, "es")}
			ok := false
			for _, g := range got.Keywords {
				for _, f := range forms {
					ok = ok || g == f
				}
			}
			if !ok {
				t.Errorf("%s's keyword %q routes to %s: %s", b.ID, k, got.ID, reason)
			}
		}
	}
}

func TestRouteAmong(t *testing.T) {
	c := loadEmbedded(t)
	const q = "What are the side effects of metformin for a patient with kidney disease?"
	notPharmacology := func(b *brain.Brain) bool { return b.ID != "pharmacology" }
	if b, reason := c.RouteAmong(q, notPharmacology); b.ID == "pharmacology" {
		t.Errorf("routed to a brain the caller may not use: %s", reason)
	}
	onlyOfficial := func(b *brain.Brain) bool { return b.Classification == "OFFICIAL" }
	if b, reason := c.RouteAmong("nothing to see here", onlyOfficial); b.ID != "education" ||
		!strings.Contains(reason, "the default brain summariser is not permitted; routed to education, the first permitted domain brain") {
		t.Errorf("got %s: %s", b.ID, reason)
	}
	none := func(*brain.Brain) bool { return false }
	if b, reason := c.RouteAmong(q, none); b.ID != brain.DefaultRoute || !strings.Contains(reason, "no domain brain is permitted") {
		t.Errorf("got %s: %s", b.ID, reason)
	}
}

// TestRouteDeterministic: the same prompt gives the same brain and reason, call after
// call and catalogue after catalogue, and routing changes nothing.
func TestRouteDeterministic(t *testing.T) {
	prompts := []string{
		"code this discharge summary ICD-10",
		"defence logistics",
		"audit the supplier tender evaluation and the contract award",
		"nothing to see here",
		strings.Repeat("risk exposure liquidity contract clause ", 1000),
	}
	a, b := loadEmbedded(t), loadEmbedded(t)
	before := a.All()
	for _, p := range prompts {
		first, firstReason := a.Route(p)
		for i := 0; i < 50; i++ {
			c := a
			if i%2 == 1 {
				c = b
			}
			got, reason := c.Route(p)
			if got.ID != first.ID || reason != firstReason {
				t.Fatalf("Route(%.40q) gave %s %q, then %s %q", p, first.ID, firstReason, got.ID, reason)
			}
		}
	}
	after := a.All()
	for i := range before {
		if before[i].ID != after[i].ID || strings.Join(before[i].Keywords, ",") != strings.Join(after[i].Keywords, ",") {
			t.Fatal("Route changed the catalogue")
		}
	}
}

func TestRouteReadsAtMostMaxRoutePrompt(t *testing.T) {
	c := loadEmbedded(t)
	p := strings.Repeat(" ", brain.MaxRoutePrompt) + "ICD-10 discharge coding"
	if b, _ := c.Route(p); b.ID != brain.DefaultRoute {
		t.Errorf("keywords past MaxRoutePrompt decided the route: %s", b.ID)
	}
	if b, _ := c.Route(p[brain.MaxRoutePrompt-10:]); b.ID != "clinical-coding" {
		t.Errorf("got %s", b.ID)
	}
}

func TestRouteUsesOverriddenKeywords(t *testing.T) {
	c, err := brain.Load(writeBrains(t, map[string]string{"tax.yaml": `id: tax
kind: domain
title: Tax
system_prompt: Answer tax questions.
classification: OFFICIAL
keywords: [weather]
`}))
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := c.Route("what's the weather"); b.ID != "tax" {
		t.Errorf("got %s", b.ID)
	}
	if b, _ := c.Route("VAT and HMRC"); b.ID != brain.DefaultRoute {
		t.Errorf("the embedded keywords still route: %s", b.ID)
	}
}

func BenchmarkRoute(b *testing.B) {
	c := loadEmbedded(b)
	p := "Please code this discharge summary with ICD-10 and OPCS-4, noting comorbidities and the procedures performed during the admission."
	b.ReportAllocs()
	for b.Loop() {
		c.Route(p)
	}
}

// BenchmarkRouteLargePrompt routes a MaxRoutePrompt-byte prompt made of every word of
// the embedded catalogue: the most work one prompt can cause.
func BenchmarkRouteLargePrompt(b *testing.B) {
	c := loadEmbedded(b)
	var sb strings.Builder
	for sb.Len() < brain.MaxRoutePrompt {
		for _, br := range c.All() {
			sb.WriteString(br.Title + " " + br.Description + " " + strings.Join(br.Examples, " ") + " " + strings.Join(br.Keywords, " ") + " ")
		}
	}
	p := sb.String()[:brain.MaxRoutePrompt]
	b.ReportAllocs()
	for b.Loop() {
		c.Route(p)
	}
}
