package invoke

import (
	"bytes"
	"testing"

	"github.com/sios-project/sios/jcs"
	"github.com/sios-project/sios/policy"
)

// FuzzParseSearchPayload: whatever the holder accepts as a search payload re-encodes to
// exactly its input and is within every cap.
func FuzzParseSearchPayload(f *testing.F) {
	for _, sp := range []SearchPayload{
		{Query: "what about the stenosis?", Subjects: []string{"case-1187", "case-2290"}},
		{Query: "", Subjects: []string{"é € 😀 \"quoted\""}, Limit: MaxReleasePerSubject},
	} {
		b, err := jcs.Marshal(&sp)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"query":"x","subjects":["b","a"]}`))
	f.Add([]byte(`{"limit":0,"query":"x","subjects":["a"]}`))
	f.Add([]byte(`{"query":"x","subjects":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		sp, err := ParseSearchPayload(b)
		if err != nil {
			return
		}
		again, err := jcs.Marshal(sp)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("parse-then-encode changed the payload:\n%s\n%s (%v)", b, again, err)
		}
		if err := sp.check(); err != nil {
			t.Fatalf("accepted a payload its own check refuses: %v", err)
		}
	})
}

// FuzzParseReleaseOutput: whatever the requester accepts as a release output re-encodes
// to exactly its input, and checking it against a grant never panics.
func FuzzParseReleaseOutput(f *testing.F) {
	ro := ReleaseOutput{Grant: "00112233445566778899aabbccddeeff", MaxClassification: policy.OfficialSensitive, Retain: true,
		Memories: []ReleasedMemory{
			{ID: "mem_aaaa", Subject: "case-1187", Classification: policy.Official, Source: "api:okafor", Created: "2026-03-02T09:00:00.5Z", Text: "echo: mild stenosis"},
			{ID: "mem_bbbb", Subject: "case-2290", Classification: policy.OfficialSensitive, Created: "2026-03-02T09:00:00Z", Text: "\"quoted\" é € 😀\n"},
		}}
	b, err := jcs.Marshal(&ro)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	ro.Memories = []ReleasedMemory{}
	b, _ = jcs.Marshal(&ro)
	f.Add(b)
	f.Add([]byte(`{"grant":"x","max_classification":"OFFICIAL","memories":null,"retain":false}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ro, err := ParseReleaseOutput(b)
		if err != nil {
			return
		}
		again, err := jcs.Marshal(ro)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("parse-then-encode changed the output:\n%s\n%s (%v)", b, again, err)
		}
		if len(ro.Memories) > MaxReleased || !ro.MaxClassification.Valid() {
			t.Fatalf("accepted an output beyond its caps: %d memories", len(ro.Memories))
		}
	})
}
