package deliberate

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/sios-project/sios/fleet"
	"github.com/sios-project/sios/oar"
)

// TestParseCallAnswerStrict: the answer a contributor writes (fleet.Marshal of a
// CallAnswer) reads back the same; a repeated, differently cased or unknown member is
// refused naming it, where encoding/json would let the last win, match it anyway or
// skip it.
func TestParseCallAnswerStrict(t *testing.T) {
	sent := &CallAnswer{Ballot: json.RawMessage(`{"v":"decision-ballot/1"}`), Rationale: "R&D <lab> says so",
		Receipt: &oar.Receipt{V: "oar-receipt/1", Kind: "sealed", Index: 7, RecordHash: strings.Repeat("ab", 32), SealIndex: 9,
			InclusionProof: []string{strings.Repeat("cd", 32)}, Seal: json.RawMessage(`{"v":"oar/1"}`)},
		Invocation: strings.Repeat("ef", 32)}
	b, err := fleet.Marshal(sent)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseCallAnswer(b)
	if err != nil || !reflect.DeepEqual(got, sent) {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	ballot := `"ballot":{"v":"decision-ballot/1"}`
	for _, c := range []struct{ name, in, want string }{
		{"repeated member", `{` + ballot + `,"rationale":"a","rationale":"b"}`, `duplicate object member name "rationale"`},
		{"differently cased member", `{` + ballot + `,"Rationale":"a"}`, `unknown object member name "Rationale"`},
		{"unknown member", `{` + ballot + `,"confidence":1}`, `unknown object member name "confidence"`},
		{"unknown member of the receipt", `{` + ballot + `,"receipt":{"v":"x","proof":[]}}`, `unknown object member name "proof"`},
		{"no ballot", `{"rationale":"a"}`, "it has none"},
		{"too large", `{` + ballot + `,"rationale":"` + strings.Repeat("x", MaxCallAnswer) + `"}`, "(MaxCallAnswer)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := ParseCallAnswer([]byte(c.in)); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("ParseCallAnswer = %v, want an error saying %q", err, c.want)
			}
		})
	}
}

// FuzzParseCallAnswer: whatever ParseCallAnswer accepts has a ballot and reads the
// same once written back.
func FuzzParseCallAnswer(f *testing.F) {
	f.Add([]byte(`{"ballot":{"v":"decision-ballot/1"},"rationale":"r","receipt":null,"invocation":"x"}`))
	f.Add([]byte(`{"ballot":{},"ballot":{"a":1}}`))
	f.Add([]byte(`{"Ballot":{},"receipt":{"v":"oar-receipt/1","index":1,"inclusion_proof":[],"seal":{}}}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		ans, err := ParseCallAnswer(in)
		if err != nil {
			return
		}
		if len(ans.Ballot) == 0 {
			t.Fatal("accepted an answer without a ballot")
		}
		again, err := fleet.Marshal(ans)
		if err != nil {
			t.Fatal(err)
		}
		ans2, err := ParseCallAnswer(again)
		if err != nil || ans2.Rationale != ans.Rationale || ans2.Invocation != ans.Invocation || (ans.Receipt == nil) != (ans2.Receipt == nil) {
			t.Fatalf("written back, %s does not read the same: %v", in, err)
		}
	})
}
