package succession

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sios-project/sios/identity"
)

// fuzzSeeds is one of every format, read from the published vectors (signing them
// afresh in every fuzz worker would cost seconds under coverage instrumentation).
type fuzzSeeds struct {
	Nodes []struct {
		MLDSA65 string `json:"mldsa65_seed_hex"`
		Ed25519 string `json:"ed25519_seed_hex"`
	} `json:"nodes"`
	KEMStatements []string `json:"kem_statements"`
	Charter       struct {
		Canonical string `json:"canonical"`
	} `json:"charter"`
	Events []struct {
		Name      string `json:"name"`
		Canonical string `json:"canonical"`
	} `json:"events"`
	Certificates []struct {
		Canonical string `json:"canonical"`
	} `json:"certificates"`
	Letter struct {
		Canonical string   `json:"canonical"`
		Released  []string `json:"released"`
	} `json:"letter"`
}

func newFuzzSeeds(f *testing.F) *fuzzSeeds {
	b, err := os.ReadFile(filepath.Join("testdata", "vectors.json"))
	if err != nil {
		f.Fatal(err)
	}
	var s fuzzSeeds
	if err := json.Unmarshal(b, &s); err != nil {
		f.Fatal(err)
	}
	return &s
}

// roundTrip fails the fuzz test if b parsed but does not re-encode to exactly b.
func roundTrip(t *testing.T, b []byte, encode func() ([]byte, error)) {
	again, err := encode()
	if err != nil {
		t.Fatalf("accepted input does not encode: %v", err)
	}
	if !bytes.Equal(again, b) {
		t.Fatalf("parse-then-encode changed the input:\n%s\n%s", b, again)
	}
}

func FuzzParseCharter(f *testing.F) {
	s := newFuzzSeeds(f)
	f.Add([]byte(s.Charter.Canonical))
	f.Add([]byte(s.Events[0].Canonical))
	f.Fuzz(func(t *testing.T, b []byte) {
		if c, err := ParseCharter(b); err == nil {
			roundTrip(t, b, c.Encode)
		}
	})
}

func FuzzParseEvent(f *testing.F) {
	s := newFuzzSeeds(f)
	for _, e := range s.Events {
		f.Add([]byte(e.Canonical))
	}
	f.Add([]byte(s.Charter.Canonical))
	f.Fuzz(func(t *testing.T, b []byte) {
		if e, err := ParseEvent(b); err == nil {
			roundTrip(t, b, e.Encode)
			if !bytes.Equal(e.Bytes(), b) || e.Hash() != EventHash(b) {
				t.Fatal("a parsed event does not keep its bytes")
			}
		}
	})
}

func FuzzParseCertificate(f *testing.F) {
	s := newFuzzSeeds(f)
	for _, c := range s.Certificates {
		f.Add([]byte(c.Canonical))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if c, err := ParseCertificate(b); err == nil {
			roundTrip(t, b, c.Encode)
		}
	})
}

func FuzzParseLetter(f *testing.F) {
	s := newFuzzSeeds(f)
	f.Add([]byte(s.Letter.Canonical))
	f.Fuzz(func(t *testing.T, b []byte) {
		if l, err := ParseLetter(b); err == nil {
			roundTrip(t, b, l.Encode)
		}
	})
}

func FuzzParseShare(f *testing.F) {
	s := newFuzzSeeds(f)
	for _, r := range s.Letter.Released {
		f.Add([]byte(r))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := ParseShare(b); err == nil {
			roundTrip(t, b, r.Encode)
		}
	})
}

func FuzzParseKEM(f *testing.F) {
	s := newFuzzSeeds(f)
	for _, k := range s.KEMStatements {
		f.Add([]byte(k))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if k, err := ParseKEM(b); err == nil {
			roundTrip(t, b, k.Encode)
		}
	})
}

// FuzzParseDocument: whatever ParseDocument accepts re-encodes to exactly its input.
func FuzzParseDocument(f *testing.F) {
	s := newFuzzSeeds(f)
	f.Add([]byte(s.Charter.Canonical))
	f.Add([]byte(s.Events[0].Canonical))
	f.Add([]byte(s.Letter.Canonical))
	f.Add([]byte(s.Letter.Released[0]))
	f.Add([]byte(s.KEMStatements[0]))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := ParseDocument(b)
		if err != nil {
			return
		}
		roundTrip(t, b, d.(interface{ Encode() ([]byte, error) }).Encode)
	})
}

// FuzzState: whatever bytes join two genuine suspicions, the role is not handed over
// and does not go pending (k is 3, and no input can sign for a third observer: the
// vectors' third suspicion is kept out of the corpus), and StateFromBytes does not
// panic.
func FuzzState(f *testing.F) {
	s := newFuzzSeeds(f)
	keys := KeyMap{}
	for _, n := range s.Nodes {
		m, _ := hex.DecodeString(n.MLDSA65)
		e, _ := hex.DecodeString(n.Ed25519)
		k := identity.KeyFromSeeds(identity.KindNode, [32]byte(m), [32]byte(e))
		keys[k.Public().ID(identity.NodePrefix)] = k.Public()
	}
	c, err := ParseCharter([]byte(s.Charter.Canonical))
	if err != nil {
		f.Fatal(err)
	}
	var genuine [][]byte
	for _, e := range s.Events {
		switch e.Name {
		case "suspicion-0", "suspicion-1":
			genuine = append(genuine, []byte(e.Canonical))
		case "suspicion-2": // a genuine third observer's: the one input that may hand over
		default:
			f.Add([]byte(e.Canonical))
		}
	}
	if len(genuine) != 2 {
		f.Fatalf("the vectors hold %d of the two suspicions this test needs", len(genuine))
	}
	f.Add([]byte(s.Certificates[0].Canonical))
	now := time.Unix(c.time+1000, 0)
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := StateFromBytes(c, append(genuine, b, b), keys, now)
		if err != nil {
			t.Fatal(err)
		}
		if st.State == StateHandedOver || st.State == StatePending {
			t.Fatalf("one input made the role %s", st.State)
		}
	})
}
