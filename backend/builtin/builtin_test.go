package builtin

import (
	"strings"
	"testing"
)

func TestEvalArithmetic(t *testing.T) {
	for _, c := range []struct {
		expr string
		want float64
		err  string
	}{
		{"1+2*3", 7, ""},
		{"(1+2)*3", 9, ""},
		{"2^3^2", 512, ""},
		{"-2^2", -4, ""},
		{"10 % 4", 2, ""},
		{"1,000 * 3", 3000, ""},
		{"7/2", 3.5, ""},
		{"1/0", 0, "division by zero"},
		{"2 +", 0, "ends too early"},
		{"2 $ 3", 0, "unexpected"},
		{"(1+2", 0, "missing ')'"},
		{strings.Repeat("(", 70) + "1" + strings.Repeat(")", 70), 0, "nest"},
		{"", 0, "empty"},
		{"10^400", 0, "finite"},
	} {
		got, err := EvalArithmetic(c.expr)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: %v, want error %q", c.expr, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%q = %v, %v; want %v", c.expr, got, err, c.want)
		}
	}
}

func TestRedact(t *testing.T) {
	in := "Contact jo.bloggs@nhs.net or 07700 900123, NHS 943 476 5919, NI QQ 12 34 56 C, card 4111 1111 1111 1111, SW1A 1AA, 10.1.2.3."
	out := Redact(in)
	for _, leak := range []string{"jo.bloggs", "900123", "943 476", "QQ 12", "4111", "SW1A", "10.1.2.3"} {
		if strings.Contains(out, leak) {
			t.Errorf("%q survived redaction: %s", leak, out)
		}
	}
	for _, label := range []string{"[EMAIL]", "[PHONE]", "[NI-NUMBER]", "[CARD]", "[POSTCODE]", "[IP]"} {
		if !strings.Contains(out, label) {
			t.Errorf("no %s in %s", label, out)
		}
	}
	if Redact("nothing personal here") != "nothing personal here" {
		t.Error("redaction changed clean text")
	}
}

func TestSuggestClassification(t *testing.T) {
	for text, want := range map[string]string{
		"the weather is fine":                 "OFFICIAL",
		"patient diagnosis attached":          "OFFICIAL-SENSITIVE",
		"email me at a@b.co":                  "OFFICIAL-SENSITIVE",
		"this is SECRET operational plan":     "SECRET",
		"TOP SECRET STRAP 1 material follows": "TOP-SECRET",
	} {
		if got, _ := SuggestClassification(text); got != want {
			t.Errorf("%q: %s, want %s", text, got, want)
		}
	}
}

func TestSplitKeepConcatenates(t *testing.T) {
	s := "one two\nthree  four"
	if got := strings.Join(splitKeep(s), ""); got != s {
		t.Fatalf("%q", got)
	}
	if got := truncateTokens("ééééééééé", 1); len(got) != 4 {
		t.Fatalf("truncate cut inside a rune: %q", got)
	}
}
