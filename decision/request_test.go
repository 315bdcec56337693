package decision

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sios-project/sios/fleet"
	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/jcs"
	"github.com/sios-project/sios/oar"
)

func TestRequestRoundTrip(t *testing.T) {
	f := newFixture(t)
	for _, rule := range []Rule{{Name: RulePlurality}, {Name: RuleWeighted}, {Name: RuleQuorum, Quorum: 3},
		{Name: RuleUnanimity}, {Name: RuleVeto, Vetoers: []string{"pharmacology", "evaluator@*"}}} {
		t.Run(rule.Name, func(t *testing.T) {
			b, err := SealRequest(f.keys[origin], f.draft(rule))
			if err != nil {
				t.Fatal(err)
			}
			req, err := ParseRequest(b)
			if err != nil {
				t.Fatal(err)
			}
			again, err := encode(req)
			if err != nil || !bytes.Equal(again, b) {
				t.Fatalf("encoding a parsed request does not give its bytes back: %v\n%s\n%s", err, again, b)
			}
			if err := req.Verify(f.keys[origin].Public()); err != nil {
				t.Fatal(err)
			}
			if err := req.Verify(f.keys[peerA].Public()); err == nil || !strings.Contains(err.Error(), "the key given is") {
				t.Fatalf("Verify with another node's key = %v, want the key named as another node's", err)
			}
			if !bytes.Equal(req.Bytes(), b) || req.Hash() != DecisionHash(b) || len(req.Hash()) != 64 {
				t.Fatal("Bytes and Hash do not name the parsed bytes")
			}
		})
	}
}

func TestRequestFlippedBitDoesNotVerify(t *testing.T) {
	f := newFixture(t)
	b, err := SealRequest(f.keys[origin], f.draft(Rule{Name: RulePlurality}))
	if err != nil {
		t.Fatal(err)
	}
	// Flip a letter of an option: still a valid request, no longer the one signed.
	i := bytes.Index(b, []byte(`"admit"`)) + 1
	bad := bytes.Clone(b)
	bad[i] = 'b'
	req, err := ParseRequest(bad)
	if err != nil {
		t.Fatal(err)
	}
	if err := req.Verify(f.keys[origin].Public()); !errors.Is(err, identity.ErrBadSignature) {
		t.Fatalf("Verify of a changed request = %v, want ErrBadSignature", err)
	}
}

func TestRequestValidation(t *testing.T) {
	f := newFixture(t)
	for _, c := range []struct {
		name string
		edit func(*Request)
		want string
	}{
		{"nonce", func(r *Request) { r.Nonce = "ABAB" }, "nonce"},
		{"origin", func(r *Request) { r.Origin = "node_x" }, "origin"},
		{"issued spelling", func(r *Request) { r.Issued = "2026-05-04T10:00:00+00:00" }, "issued"},
		{"deadline before issued", func(r *Request) { r.Deadline = r.Issued }, "is not after issued"},
		{"deadline too far", func(r *Request) { r.Deadline = oar.FormatTime(t0.Add(MaxDecisionLifetime + time.Second)) }, "MaxDecisionLifetime"},
		{"classification", func(r *Request) { r.Classification = "SECRETISH" }, "classification"},
		{"question digest", func(r *Request) { r.QuestionDigest = strings.Repeat("A", 64) }, "question_digest"},
		{"one option", func(r *Request) { r.Options = []string{"yes"} }, "MaxOptions"},
		{"too many options", func(r *Request) { r.Options = manyOptions(MaxOptions + 1) }, "MaxOptions"},
		{"option too long", func(r *Request) { r.Options[0] = strings.Repeat("x", MaxOptionLen+1) }, "MaxOptionLen"},
		{"option case repeat", func(r *Request) { r.Options[1] = "Discharge" }, "repeats options[0]"},
		{"option abstain", func(r *Request) { r.Options[1] = "Abstain" }, "reserved"},
		{"option veto", func(r *Request) { r.Options[1] = "VETO:discharge" }, "marks vetoes"},
		{"option comma", func(r *Request) { r.Options[1] = "a,b" }, "comma"},
		{"option space", func(r *Request) { r.Options[1] = " admit" }, "white space"},
		{"option control", func(r *Request) { r.Options[1] = "ad\u0085mit" }, "control"},
		{"rule", func(r *Request) { r.Rule.Name = "majority" }, "rule.name"},
		{"quorum zero", func(r *Request) { r.Rule = Rule{Name: RuleQuorum} }, "rule.quorum"},
		{"quorum too big", func(r *Request) { r.Rule = Rule{Name: RuleQuorum, Quorum: 6} }, "rule.quorum"},
		{"quorum elsewhere", func(r *Request) { r.Rule.Quorum = 2 }, "only for the quorum rule"},
		{"veto without vetoers", func(r *Request) { r.Rule = Rule{Name: RuleVeto} }, "rule.vetoers"},
		{"vetoer not a member", func(r *Request) { r.Rule = Rule{Name: RuleVeto, Vetoers: []string{"tax"}} }, "rule.vetoers[0]"},
		{"vetoer twice", func(r *Request) {
			r.Rule = Rule{Name: RuleVeto, Vetoers: []string{"pharmacology", "pharmacology"}}
		}, "named twice"},
		{"one member", func(r *Request) { r.Panel.Members = r.Panel.Members[:1] }, "MaxMembers"},
		{"too many members", func(r *Request) {
			for i := range MaxMembers {
				r.Panel.Members = append(r.Panel.Members, "tax-"+string(rune('a'+i)))
			}
		}, "MaxMembers"},
		{"member repeated", func(r *Request) { r.Panel.Members[1] = r.Panel.Members[0] }, "repeats member 0"},
		{"member bad brain", func(r *Request) { r.Panel.Members[1] = "Pharmacology" }, "panel.members[1]"},
		{"member bad node", func(r *Request) { r.Panel.Members[1] = "pharmacology@node_X" }, "node id"},
		{"member is the origin", func(r *Request) { r.Panel.Members[1] = "pharmacology@" + r.Origin }, "write it \"pharmacology\""},
		{"weights without weighted", func(r *Request) { r.Panel.Weights = map[string]int{"pharmacology": 2} }, "only the weighted rule"},
		{"weighted without weight", func(r *Request) {
			r.Rule = Rule{Name: RuleWeighted}
			r.Panel.Weights = map[string]int{"pharmacology": 2}
		}, "has no weight"},
		{"weight of a stranger", func(r *Request) {
			r.Rule = Rule{Name: RuleWeighted}
			r.Panel = r.Panel.ForRule(r.Rule)
			r.Panel.Weights["tax"] = 1
		}, "panel.weights.tax: is not a member"},
		{"weight too big", func(r *Request) {
			r.Rule = Rule{Name: RuleWeighted}
			r.Panel = r.Panel.ForRule(r.Rule)
			r.Panel.Weights["pharmacology"] = MaxWeight + 1
		}, "MaxWeight"},
		{"min nodes", func(r *Request) { r.Panel.MinNodes = 6 }, "panel.min_nodes"},
		{"min institutions", func(r *Request) { r.Panel.MinInstitutions = -1 }, "panel.min_institutions"},
		{"panel id", func(r *Request) { r.Panel.ID = "Discharge Review" }, "panel.id"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := f.draft(Rule{Name: RulePlurality})
			c.edit(&r)
			_, err := SealRequest(f.keys[origin], r)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("SealRequest = %v, want an error containing %q", err, c.want)
			}
		})
	}
}

func manyOptions(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = "option-" + string(rune('a'+i))
	}
	return out
}

// TestParseRequestStrict shows that ParseRequest refuses every other spelling of a
// valid request: members added, renamed, duplicated, or left out.
func TestParseRequestStrict(t *testing.T) {
	f := newFixture(t)
	b, err := SealRequest(f.keys[origin], f.draft(Rule{Name: RulePlurality}))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		edit func(string) string
		want string
	}{
		{"unknown member", func(s string) string { return strings.Replace(s, `{"classification"`, `{"a":1,"classification"`, 1) }, "not part of decision-request/1"},
		{"differently cased", func(s string) string { return renamed(t, s, "nonce", "Nonce") }, "not part of decision-request/1"},
		{"duplicate member", func(s string) string {
			return strings.Replace(s, `"classification":"OFFICIAL-SENSITIVE"`, `"classification":"OFFICIAL-SENSITIVE","classification":"OFFICIAL"`, 1)
		}, "duplicate object member"},
		{"not canonical", func(s string) string { return strings.Replace(s, `{"classification"`, `{ "classification"`, 1) }, "canonical"},
		{"missing sig", func(s string) string { return withoutMember(t, s, "sig") }, "sig is required"},
		{"too large", func(s string) string { return s + strings.Repeat(" ", MaxRequestSize) }, "MaxRequestSize"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseRequest([]byte(c.edit(string(b))))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("ParseRequest = %v, want an error containing %q", err, c.want)
			}
		})
	}
}

func TestForRule(t *testing.T) {
	p := Panel{Members: []string{"a", "b"}, Weights: map[string]int{"a": 3}}
	w := p.ForRule(Rule{Name: RuleWeighted})
	if w.Weights["a"] != 3 || w.Weights["b"] != 1 {
		t.Fatalf("weighted weights = %v, want a 3 and b 1", w.Weights)
	}
	if q := p.ForRule(Rule{Name: RuleQuorum, Quorum: 1}); q.Weights != nil {
		t.Fatalf("quorum weights = %v, want none", q.Weights)
	}
	w.Members[0] = "z"
	if p.Members[0] != "a" {
		t.Fatal("ForRule shares the members with the panel")
	}
}

func TestLimitsMatchTheirSources(t *testing.T) {
	if MaxDecisionLifetime != fleet.MaxEnvelopeLifetime {
		t.Fatalf("MaxDecisionLifetime %v differs from fleet.MaxEnvelopeLifetime %v: a request travels in an envelope", MaxDecisionLifetime, fleet.MaxEnvelopeLifetime)
	}
	if MaxOutcomeSize+4<<10 > oar.MaxEntrySize+1 {
		t.Fatalf("MaxOutcomeSize %d leaves less than 4 KiB of an audit entry (%d)", MaxOutcomeSize, oar.MaxEntrySize)
	}
}

// withoutMember is the canonical JSON object s without its member name.
func withoutMember(t testing.TB, s, name string) string { return renamed(t, s, name, "") }

// renamed is the canonical JSON object s with its member from renamed to (or left out
// when to is "").
func renamed(t testing.TB, s, from, to string) string {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatal(err)
	}
	if to != "" {
		m[to] = m[from]
	}
	delete(m, from)
	b, err := jcs.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
