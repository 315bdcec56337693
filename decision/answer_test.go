package decision

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

func TestResponseFormat(t *testing.T) {
	choices := []string{"discharge", "admit", "veto:discharge", Abstain}
	raw, err := ResponseFormat(choices)
	if err != nil {
		t.Fatal(err)
	}
	var rf struct {
		Type       string `json:"type"`
		JSONSchema struct {
			Name   string `json:"name"`
			Strict bool   `json:"strict"`
			Schema struct {
				Type       string `json:"type"`
				Properties map[string]struct {
					Type    string   `json:"type"`
					Enum    []string `json:"enum"`
					Minimum *float64 `json:"minimum"`
					Maximum *float64 `json:"maximum"`
				} `json:"properties"`
				Required             []string `json:"required"`
				AdditionalProperties *bool    `json:"additionalProperties"`
			} `json:"schema"`
		} `json:"json_schema"`
	}
	if err := json.Unmarshal(raw, &rf); err != nil {
		t.Fatal(err)
	}
	s := rf.JSONSchema.Schema
	p := s.Properties
	switch {
	case rf.Type != "json_schema" || rf.JSONSchema.Name != "ballot" || !rf.JSONSchema.Strict:
		t.Fatalf("response_format head: %s", raw)
	case s.Type != "object" || s.AdditionalProperties == nil || *s.AdditionalProperties:
		t.Fatalf("schema must be a closed object: %s", raw)
	case !slices.Equal(s.Required, []string{"choice", "confidence", "rationale"}) || len(p) != 3:
		t.Fatalf("schema members: %s", raw)
	case p["choice"].Type != "string" || !slices.Equal(p["choice"].Enum, choices):
		t.Fatalf("choice must be an enum of the choices: %s", raw)
	case p["confidence"].Type != "number" || p["confidence"].Minimum == nil || *p["confidence"].Minimum != 0 || *p["confidence"].Maximum != 1:
		t.Fatalf("confidence must be a number from 0 to 1: %s", raw)
	case p["rationale"].Type != "string":
		t.Fatalf("rationale must be a string: %s", raw)
	}
	for _, bad := range [][]string{{"a"}, {"a", "a"}, {"a", ""}} {
		if _, err := ResponseFormat(bad); err == nil {
			t.Errorf("ResponseFormat(%q) succeeded", bad)
		}
	}
}

func TestParseAnswer(t *testing.T) {
	choices := []string{"discharge", "admit", "veto:discharge", Abstain}
	long := strings.Repeat("é", MaxRationaleLen) // two bytes each
	for _, c := range []struct {
		name, in   string
		choice     string
		confidence Permille
		abstention string
		rationale  string // "" to skip the check
	}{
		{"plain", `{"choice":"admit","confidence":0.85,"rationale":"stable vitals"}`, "admit", 850, "", "stable vitals"},
		{"spaced and reordered", " \n{ \"rationale\": \"r\", \"confidence\": 1, \"choice\": \"discharge\" }\n", "discharge", 1000, "", "r"},
		{"fenced", "```json\n{\"choice\":\"admit\",\"confidence\":0.3,\"rationale\":\"\"}\n```", "admit", 300, "", ""},
		{"rounded", `{"choice":"admit","confidence":0.0005,"rationale":"r"}`, "admit", 1, "", "r"},
		{"exponent", `{"choice":"admit","confidence":5e-1,"rationale":"r"}`, "admit", 500, "", "r"},
		{"half up, not binary", `{"choice":"admit","confidence":0.0015,"rationale":"r"}`, "admit", 2, "", "r"},
		{"half up to 1", `{"choice":"admit","confidence":0.9995,"rationale":"r"}`, "admit", 1000, "", "r"},
		{"below half", `{"choice":"admit","confidence":0.00049999,"rationale":"r"}`, "admit", 0, "", "r"},
		{"tiny exponent", `{"choice":"admit","confidence":1e-99999999,"rationale":"r"}`, "admit", 0, "", "r"},
		{"veto", `{"choice":"veto:discharge","confidence":0.9,"rationale":"unsafe"}`, "veto:discharge", 900, "", "unsafe"},
		{"model abstains", `{"choice":"abstain","confidence":0.9,"rationale":"not enough information"}`, Abstain, 0, AbstainChosen, "not enough information"},
		{"long rationale cut", `{"choice":"admit","confidence":0.5,"rationale":"` + long + `"}`, "admit", 500, "", long[:MaxRationaleLen]},
		{"prose", `I think the patient should be admitted.`, Abstain, 0, AbstainUnparsable, ""},
		{"text after", `{"choice":"admit","confidence":0.5,"rationale":"r"} Hope this helps!`, Abstain, 0, AbstainUnparsable, ""},
		{"array", `["admit"]`, Abstain, 0, AbstainUnparsable, ""},
		{"duplicate member", `{"choice":"admit","choice":"discharge","confidence":0.5,"rationale":"r"}`, Abstain, 0, AbstainUnparsable, ""},
		{"unclosed fence", "```json\n{\"choice\":\"admit\",\"confidence\":0.3,\"rationale\":\"\"}", Abstain, 0, AbstainUnparsable, ""},
		{"empty", ``, Abstain, 0, AbstainUnparsable, ""},
		{"too long", `{"choice":"admit","confidence":0.5,"rationale":"` + strings.Repeat("x", MaxAnswerLen) + `"}`, Abstain, 0, AbstainUnparsable, ""},
		{"extra member", `{"choice":"admit","confidence":0.5,"rationale":"r","urgency":"high"}`, Abstain, 0, AbstainInvalid, ""},
		{"member cased", `{"Choice":"admit","confidence":0.5,"rationale":"r"}`, Abstain, 0, AbstainInvalid, ""},
		{"no rationale", `{"choice":"admit","confidence":0.5}`, Abstain, 0, AbstainInvalid, ""},
		{"null rationale", `{"choice":"admit","confidence":0.5,"rationale":null}`, Abstain, 0, AbstainInvalid, ""},
		{"confidence as text", `{"choice":"admit","confidence":"0.5","rationale":"r"}`, Abstain, 0, AbstainInvalid, ""},
		{"confidence above 1", `{"choice":"admit","confidence":1.01,"rationale":"r"}`, Abstain, 0, AbstainInvalid, ""},
		{"confidence below 0", `{"choice":"admit","confidence":-0.1,"rationale":"r"}`, Abstain, 0, AbstainInvalid, ""},
		{"choice not offered", `{"choice":"refer","confidence":0.5,"rationale":"r"}`, Abstain, 0, AbstainInvalid, ""},
		{"choice cased", `{"choice":"Admit","confidence":0.5,"rationale":"r"}`, Abstain, 0, AbstainInvalid, ""},
		{"choice not text", `{"choice":1,"confidence":0.5,"rationale":"r"}`, Abstain, 0, AbstainInvalid, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := ParseAnswer(c.in, choices)
			if a.Choice != c.choice || a.Confidence != c.confidence || a.Abstention != c.abstention {
				t.Fatalf("ParseAnswer = %+v, want choice %q, confidence %d, abstention %q", a, c.choice, c.confidence, c.abstention)
			}
			if c.rationale != "" && a.Rationale != c.rationale {
				t.Fatalf("rationale %q, want %q", a.Rationale, c.rationale)
			}
			if a.Abstention != "" && a.Abstention != AbstainChosen && a.Rationale == "" {
				t.Fatal("an answer turned into an abstention must say why")
			}
			checkAnswer(t, a, choices)
		})
	}
}

// checkAnswer requires what every Answer promises: a choice offered, a ballot that
// seals with it.
func checkAnswer(t *testing.T, a Answer, choices []string) {
	t.Helper()
	if !slices.Contains(choices, a.Choice) || a.Confidence > MaxPermille || len(a.Rationale) > MaxRationaleLen {
		t.Fatalf("answer out of bounds: %+v", a)
	}
	if (a.Choice == Abstain) != (a.Abstention != "") {
		t.Fatalf("choice %q with abstention %q", a.Choice, a.Abstention)
	}
}

func TestPromptNamesEveryChoice(t *testing.T) {
	choices := []string{"discharge", "admit \"now\"", "veto:discharge", Abstain}
	p := Prompt("  Is the patient fit for discharge?\n", choices)
	if !strings.HasPrefix(p, "Is the patient fit for discharge?\n\n") {
		t.Fatalf("prompt does not start with the question: %q", p)
	}
	for _, c := range choices {
		q, _ := json.Marshal(c)
		if !strings.Contains(p, string(q)) {
			t.Fatalf("prompt does not offer %s:\n%s", q, p)
		}
	}
	if !strings.Contains(p, "blocks that option") {
		t.Fatalf("prompt offers a veto without saying what it does:\n%s", p)
	}
}

func TestAnswerBallotSeals(t *testing.T) {
	f := newFixture(t)
	req := f.request(t, f.draft(Rule{Name: RulePlurality}))
	for _, a := range []Answer{
		ParseAnswer(`{"choice":"admit","confidence":0.75,"rationale":"r"}`, req.Choices("pharmacology")),
		ParseAnswer(`nonsense`, req.Choices("pharmacology")),
		FailedAnswer("the backend did not answer within 60s"),
	} {
		b, err := SealBallot(f.keys[origin], a.Ballot(req, f.ids[origin], "pharmacology", "llama3.1:8b", t0))
		if err != nil {
			t.Fatalf("%+v: %v", a, err)
		}
		x, _ := ParseBallot(b)
		if err := Verify(x, req, f.dir); err != nil || x.RationaleDigest != RationaleDigest(a.Rationale) {
			t.Fatalf("%+v: %v", a, err)
		}
	}
}
