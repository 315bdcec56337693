package oar

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/sios-project/sios/jcs"
)

// genericEncode is the reference: encoding/json, then RFC 8785 canonicalization.
func genericEncode(t testing.TB, v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	b, err := jcs.Canonicalize(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestHandEncoderMatchesGenericEncoding(t *testing.T) {
	recs := []*Record{
		{V: Version, Kind: KindRecord, Time: "2026-01-02T03:04:05Z", Node: "node_x", Actor: Actor{ID: "a"}, Action: "x"},
		{V: Version, Kind: KindRecord, Time: "2026-01-02T03:04:05.1Z", Node: "node_x", Tenant: "t\"q\\\n\x01é😀<>&",
			Actor: Actor{ID: "a", Clearance: "SECRET"}, Action: "x", Resource: "r", Classification: "OFFICIAL",
			Decision: &Decision{Effect: "deny", Policies: []string{"b", "a"}},
			Inputs:   []Digest{DigestOf("p", []byte("x")), {Name: "q", SHA256: DigestOf("", nil).SHA256}},
			Outputs:  []Digest{DigestOf("o", []byte("y"))},
			Links:    []Link{{Rel: "admission", RecordHash: DigestOf("", nil).SHA256}},
			Parties:  []json.RawMessage{json.RawMessage(`{"a":[true,null,1500],"z":1}`)},
			Detail:   json.RawMessage(`{"k": "v", "n": 10}`)},
	}
	for i, r := range recs {
		got, err := encode(r)
		if err != nil {
			t.Fatal(err)
		}
		if want := genericEncode(t, r); !bytes.Equal(got, want) {
			t.Fatalf("record %d:\n got %s\nwant %s", i, got, want)
		}
	}
	s := &Seal{V: Version, Kind: KindSeal, Node: "node_x", Seq: 3, First: 10, Count: 2, Root: DigestOf("", nil).SHA256,
		Prev: "", Time: "2026-01-02T03:04:05Z"}
	for _, seal := range []*Seal{s} {
		got, err := encode(seal)
		if err != nil {
			t.Fatal(err)
		}
		if want := genericEncode(t, seal); !bytes.Equal(got, want) {
			t.Fatalf("seal:\n got %s\nwant %s", got, want)
		}
	}
	if _, err := encode(&Record{Action: "\xff"}); err == nil {
		t.Fatal("invalid UTF-8 encoded")
	}
	// What the encoder writes, the canonical parser must accept: no noncharacters.
	if _, err := encode(&Record{Action: "a\uffffb"}); err == nil {
		t.Fatal("a noncharacter was encoded")
	}
}
