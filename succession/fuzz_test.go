package succession

import (
	"bytes"
	"testing"
)

// fuzzSeeds is one of every format, as the writers make them.
type fuzzSeeds struct {
	charter, certificate, letter, share, kem []byte
	events                                   [][]byte
}

func newFuzzSeeds(f *testing.F) fuzzSeeds {
	fx := newFixture(f)
	o := fx.obs
	st := fx.state(110, fx.suspicion(o[0], 0, 60), fx.suspicion(o[1], 0, 65), fx.suspicion(o[2], 0, 70), fx.acceptance(fx.other, "dr.li", 105))
	l := fx.sealLetter()
	kem, err := SignKEM(fx.keys[o[0]], o[0], fx.kemPub[o[0]], fx.now(0))
	if err != nil {
		f.Fatal(err)
	}
	return fuzzSeeds{
		charter: fx.charter.Bytes(), certificate: st.Certificate, letter: l.Bytes(), share: fx.release(l, st, o[0]), kem: kem,
		events: [][]byte{fx.presence(fx.other, 10, 20), fx.suspicion(o[0], 0, 60), fx.refutation(o[1], 30),
			fx.acceptance(fx.other, "dr.li", 105), fx.removal(o[2], "admin.b", 40)},
	}
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
	f.Add(s.charter)
	f.Add(s.events[0])
	f.Fuzz(func(t *testing.T, b []byte) {
		if c, err := ParseCharter(b); err == nil {
			roundTrip(t, b, c.Encode)
		}
	})
}

func FuzzParseEvent(f *testing.F) {
	s := newFuzzSeeds(f)
	for _, e := range s.events {
		f.Add(e)
	}
	f.Add(s.charter)
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
	f.Add(s.certificate)
	f.Fuzz(func(t *testing.T, b []byte) {
		if c, err := ParseCertificate(b); err == nil {
			roundTrip(t, b, c.Encode)
		}
	})
}

func FuzzParseLetter(f *testing.F) {
	s := newFuzzSeeds(f)
	f.Add(s.letter)
	f.Fuzz(func(t *testing.T, b []byte) {
		if l, err := ParseLetter(b); err == nil {
			roundTrip(t, b, l.Encode)
		}
	})
}

func FuzzParseShare(f *testing.F) {
	s := newFuzzSeeds(f)
	f.Add(s.share)
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := ParseShare(b); err == nil {
			roundTrip(t, b, r.Encode)
		}
	})
}

func FuzzParseKEM(f *testing.F) {
	s := newFuzzSeeds(f)
	f.Add(s.kem)
	f.Fuzz(func(t *testing.T, b []byte) {
		if k, err := ParseKEM(b); err == nil {
			roundTrip(t, b, k.Encode)
		}
	})
}

// FuzzState: whatever bytes join two genuine suspicions, the role is not handed over
// and does not go pending (k is 3, and no input can sign for a third observer), and
// State does not panic.
func FuzzState(f *testing.F) {
	s := newFuzzSeeds(f)
	fx := newFixture(f)
	for _, e := range s.events {
		f.Add(e)
	}
	f.Add(s.certificate)
	genuine := [][]byte{fx.suspicion(fx.obs[0], 0, 60), fx.suspicion(fx.obs[1], 0, 65)}
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := StateFromBytes(fx.charter, append(genuine, b, b), fx.pub, fx.now(1000))
		if err != nil {
			t.Fatal(err)
		}
		if st.State == StateHandedOver || st.State == StatePending {
			t.Fatalf("one input made the role %s", st.State)
		}
	})
}
