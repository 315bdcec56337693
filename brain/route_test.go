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
		{"clinical coding", "code this discharge summary ICD-10", "clinical-coding", `matched keywords "icd", "code", "discharge" (score 3)`},
		{"contract clause", "Review the indemnity clause in this supplier contract.", "legal-contracts", "runner-up procurement (score 1)"},
		{"money laundering", "Is this transaction suspicious? Check KYC and sanctions.", "anti-money-laundering", `"sanction"`},
		{"export licence", "Draft an ITAR export licence application for dual-use parts", "export-control", "score 4"},
		{"triage", "Patient with chest pain and suspected sepsis, please triage", "clinical-triage", "score 3"},
		{"tax", "What is the VAT treatment here? Cite HMRC.", "tax", "score 2"},
		{"plural", "Which of these CVEs does the ransomware exploit?", "cyber-threat", `"ransomware", "cve", "exploit"`},
		{"case and punctuation", "GDPR/DPIA!!", "data-protection", "score 2"},
		{"intelligence", "Assess adversary intent from this SIGINT and HUMINT", "intelligence-analysis", "score 3"},
		{"tie goes to lowest id", "defence logistics", "defence-logistics", "tied with defence-procurement (score 1), and ties go to the lowest id"},
		{"no match", "What's the weather like in Leeds?", "summariser", "no domain brain's keywords occur in the prompt; routed to the default brain summariser"},
		{"empty prompt", "", "summariser", "no domain brain"},
		{"only operational words", "summarise, redact, classify and calculate", "summariser", "no domain brain"},
		{"keyword inside a word does not match", "taxonomy encoding", "summariser", "no domain brain"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, reason := c.Route(tc.prompt)
			if b.ID != tc.want || !strings.Contains(reason, tc.reason) {
				t.Errorf("Route(%q) = %s, %q\nwant %s, reason containing %q", tc.prompt, b.ID, reason, tc.want, tc.reason)
			}
			if b.ID != brain.DefaultRoute && (b.Kind != brain.KindDomain || !strings.HasPrefix(reason, "routed to "+b.ID+": ")) {
				t.Errorf("routed to %s (%s) with reason %q", b.ID, b.Kind, reason)
			}
		})
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
