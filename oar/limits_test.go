package oar_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/sios-project/sios/jcs"
	"github.com/sios-project/sios/oar"
)

func nestedObject(levels int) json.RawMessage {
	return json.RawMessage(strings.Repeat(`{"a":`, levels-1) + `{}` + strings.Repeat(`}`, levels-1))
}

func baseRecord() *oar.Record {
	return &oar.Record{V: oar.Version, Kind: oar.KindRecord, Time: "2026-01-02T03:04:05Z", Node: "node_x",
		Actor: oar.Actor{ID: "a"}, Action: "x"}
}

// One depth rule on both sides: whatever Encode writes, Parse reads back, at every
// nesting depth of detail and of a party; what Parse would refuse, Encode refuses
// first, naming depth (issue 12, item 1).
func TestDepthLimitIsTheSameForWriterAndReader(t *testing.T) {
	for _, where := range []string{"detail", "party"} {
		for levels := 58; levels <= 66; levels++ {
			t.Run(fmt.Sprintf("%s nesting %d", where, levels), func(t *testing.T) {
				r := baseRecord()
				if where == "detail" {
					r.Detail = nestedObject(levels)
				} else {
					r.Parties = []json.RawMessage{nestedObject(levels)}
				}
				entry, err := r.Encode()
				// The entry is depth 1, detail depth 2, parties' array 2 and a party 3.
				enclosing := 1
				if where == "party" {
					enclosing = 2
				}
				fits := enclosing+levels <= jcs.MaxDepth
				if fits != (err == nil) {
					t.Fatalf("Encode: %v; the entry nests %d deep against MaxDepth %d", err, enclosing+levels, jcs.MaxDepth)
				}
				if err != nil {
					if !errors.Is(err, jcs.ErrDepth) || !strings.Contains(err.Error(), "MaxDepth") {
						t.Fatalf("refusal does not name the depth limit: %v", err)
					}
					return
				}
				if _, err := oar.Parse(entry); err != nil {
					t.Fatalf("Encode wrote an entry Parse refuses: %v", err)
				}
			})
		}
	}
}

// A reader that finds an entry nested too deep says so, rather than calling it
// non-canonical.
func TestParseNamesTheReason(t *testing.T) {
	r := baseRecord()
	r.Detail = nestedObject(62)
	entry, err := r.Encode()
	if err != nil {
		t.Fatal(err)
	}
	deep := strings.Replace(string(entry), `"detail":`, `"detail":{"a":{"a":`, 1)
	deep = strings.Replace(deep, `,"kind"`, `}},"kind"`, 1)
	_, err = oar.Parse([]byte(deep))
	if err == nil || !errors.Is(err, jcs.ErrDepth) || strings.Contains(err.Error(), "canonical form") {
		t.Fatalf("too deep: %v", err)
	}
	nonchar := strings.Replace(string(entry), `"action":"x"`, "\"action\":\"x\ufffe\"", 1)
	if _, err := oar.Parse([]byte(nonchar)); err == nil || !strings.Contains(err.Error(), "noncharacter U+FFFE") {
		t.Fatalf("noncharacter: %v", err)
	}
	unsorted := strings.Replace(string(entry), `{"action":"x","actor":{"id":"a"},`, `{"actor":{"id":"a"},"action":"x",`, 1)
	if _, err := oar.Parse([]byte(unsorted)); err == nil || !errors.Is(err, oar.ErrNotCanonical) {
		t.Fatalf("unsorted: %v", err)
	}
}

// A party's bytes are stored exactly as the party gave them, or refused: never
// re-encoded (issue 12, item 5).
func TestPartiesAreStoredExactlyOrRefused(t *testing.T) {
	canonical := json.RawMessage(`{"amount":2.5,"sig":"AAAA","signer":"node_peer"}`)
	r := baseRecord()
	r.Parties = []json.RawMessage{canonical}
	entry, err := r.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(entry), `"parties":[`+string(canonical)+`]`) {
		t.Fatalf("the party's bytes were not kept: %s", entry)
	}
	for _, party := range []string{
		`{"signer":"node_peer","amount":2.5}`, // members out of order
		`{"amount":2.50}`,                     // a number spelt otherwise
		`{"s":"\u0041"}`,                      // an escape rewritten
		`{ "amount": 2.5 }`,                   // whitespace
	} {
		r := baseRecord()
		r.Parties = []json.RawMessage{json.RawMessage(party)}
		if _, err := r.Encode(); err == nil || !strings.Contains(err.Error(), "parties[0]") || !strings.Contains(err.Error(), "canonical") {
			t.Errorf("party %s: %v, want a refusal naming parties[0] and canonical form", party, err)
		}
	}
}

// Numbers in detail keep their value or are refused (issue 12, item 5).
func TestDetailNumbersKeepTheirValue(t *testing.T) {
	r := baseRecord()
	r.Detail = json.RawMessage(`{"b":2.50,"a":1E2}`)
	entry, err := r.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(entry), `"detail":{"a":100,"b":2.5}`) {
		t.Fatalf("detail: %s", entry)
	}
	for _, d := range []string{`{"id":12345678901234567890}`, `{"n":9007199254740993}`, `{"tiny":1e-400}`} {
		r := baseRecord()
		r.Detail = json.RawMessage(d)
		if _, err := r.Encode(); err == nil || !strings.Contains(err.Error(), "detail") || !strings.Contains(err.Error(), "does not survive") {
			t.Errorf("detail %s: %v, want a refusal", d, err)
		}
	}
}

// Integers of seals and receipts stay within 2^53, where their canonical form is their
// value: a writer never makes a seal a reader would find non-canonical.
func TestSealIntegersStayExact(t *testing.T) {
	v := vectorSeeds(t)
	e, err := oar.Parse([]byte(v.Seal.Canonical))
	if err != nil {
		t.Fatal(err)
	}
	s := *e.Seal
	s.First = 1<<53 - 1
	s.Count = 2
	if _, err := s.Body(); err == nil || !strings.Contains(err.Error(), "2^53") {
		t.Fatalf("a seal past 2^53: %v", err)
	}
}

func TestTimeGrammar(t *testing.T) {
	for _, c := range []struct {
		time string
		ok   bool
	}{
		{"2026-01-02T03:04:05Z", true},
		{"0000-01-01T00:00:00Z", true},
		{"9999-12-31T23:59:59.999999999Z", true},
		{"2016-12-31T23:59:60Z", false}, // leap second
		{"2026-01-02T03:04:05.10Z", false},
		{"2026-01-02T03:04:05.0000000001Z", false},
		{"2026-01-02t03:04:05Z", false},
		{"2026-01-02T03:04:05z", false},
		{"2026-01-02T03:04:05+00:00", false},
		{"2026-02-30T03:04:05Z", false},
		{"10000-01-01T00:00:00Z", false},
	} {
		r := baseRecord()
		r.Time = c.time
		if err := r.Validate(); (err == nil) != c.ok {
			t.Errorf("time %q: %v, want ok=%v", c.time, err, c.ok)
		}
	}
}

// Digest names and link relations are required members that may be empty: always
// written, so that an entry has one encoding.
func TestDigestNameAndLinkRelAreAlwaysWritten(t *testing.T) {
	r := baseRecord()
	r.Inputs = []oar.Digest{{SHA256: strings.Repeat("ab", 32)}}
	r.Links = []oar.Link{{RecordHash: strings.Repeat("cd", 32)}}
	entry, err := r.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(entry), `{"name":"","sha256":"`) || !strings.Contains(string(entry), `,"rel":""}`) {
		t.Fatalf("entry: %s", entry)
	}
	if _, err := oar.Parse(entry); err != nil {
		t.Fatal(err)
	}
	omitted := strings.Replace(string(entry), `"name":"",`, ``, 1)
	if _, err := oar.Parse([]byte(omitted)); err == nil {
		t.Fatal("a digest without its name member was accepted")
	}
}
