package succession

import (
	"bytes"
	"crypto/hpke"
	"encoding/json"
	"strings"
	"testing"
)

var letterText = []byte("Caldicott log is in the records office, cabinet 3. Registry credential: hunter2-but-longer.")

// handedOver is a state in which dr.li accepted the role through the fifth node.
func (f *fixture) handedOver() RoleState {
	f.t.Helper()
	o := f.obs
	st := f.state(110, f.suspicion(o[0], 0, 60), f.suspicion(o[1], 0, 65), f.suspicion(o[2], 0, 70), f.acceptance(f.other, "dr.li", 105))
	if st.Holder != "dr.li" || st.HolderNode != f.other {
		f.t.Fatalf("fixture: holder %q via %s", st.Holder, st.HolderNode)
	}
	return st
}

func (f *fixture) sealLetter() *Letter {
	f.t.Helper()
	b, err := SealLetter(f.keys[f.obs[0]], f.obs[0], f.charter, "dr.okafor", letterText, f.kemPub, f.now(1))
	if err != nil {
		f.t.Fatal(err)
	}
	l, err := ParseLetter(b)
	if err != nil {
		f.t.Fatal(err)
	}
	if err := l.Verify(f.charter, f.pub); err != nil {
		f.t.Fatal(err)
	}
	return l
}

// release has observer o release its share to the holder's node.
func (f *fixture) release(l *Letter, st RoleState, o string) []byte {
	f.t.Helper()
	b, err := l.Release(st, f.kems[o], f.keys[o], o, f.kemPub, f.now(111))
	if err != nil {
		f.t.Fatal(err)
	}
	return b
}

func TestLetterRoundTrip(t *testing.T) {
	f := newFixture(t)
	l := f.sealLetter()
	if bytes.Contains(l.Bytes(), letterText[:20]) {
		t.Fatal("the sealed letter holds its plaintext")
	}
	for _, o := range f.obs {
		if err := l.CheckShare(f.kems[o], o); err != nil {
			t.Fatalf("observer %s: %v", o, err)
		}
	}
	st := f.handedOver()
	var released [][]byte
	for _, o := range f.obs[:3] {
		released = append(released, f.release(l, st, o))
	}
	got, err := l.Open(f.kems[f.other], f.other, released, f.pub)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, letterText) {
		t.Fatalf("opened %q", got)
	}
	// Any k of the n shares will do.
	got, err = l.Open(f.kems[f.other], f.other, [][]byte{f.release(l, st, f.obs[3]), released[2], released[0]}, f.pub)
	if err != nil || !bytes.Equal(got, letterText) {
		t.Fatalf("shares 3, 2, 0: %q, %v", got, err)
	}
}

func TestLetterFewerThanK(t *testing.T) {
	f := newFixture(t)
	l := f.sealLetter()
	st := f.handedOver()
	a, b := f.release(l, st, f.obs[0]), f.release(l, st, f.obs[1])
	// Two shares, one of them given three times, are two shares.
	_, err := l.Open(f.kems[f.other], f.other, [][]byte{a, b, a, a}, f.pub)
	if err == nil || !strings.Contains(err.Error(), "2 valid shares of the 3 needed") {
		t.Fatalf("two shares: %v", err)
	}
}

func TestLetterWrongNode(t *testing.T) {
	f := newFixture(t)
	l := f.sealLetter()
	st := f.handedOver()
	good := [][]byte{f.release(l, st, f.obs[0]), f.release(l, st, f.obs[1])}

	// Observer 2 holds the wrong key for the successor's node (observer 3's): the successor's node
	// cannot open it, so it has only two.
	wrong, err := l.Release(st, f.kems[f.obs[2]], f.keys[f.obs[2]], f.obs[2], KEMMap{f.other: f.kemPub[f.obs[3]]}, f.now(111))
	if err != nil {
		t.Fatal(err)
	}
	_, err = l.Open(f.kems[f.other], f.other, append(good, wrong), f.pub)
	if err == nil || !strings.Contains(err.Error(), "does not open with this node's KEM key") {
		t.Fatalf("share sealed to the wrong key: %v", err)
	}
	// The node whose key it was sealed to cannot use it either: it is addressed to
	// another node, and relabelling it breaks the observer's signature.
	if _, err := l.Open(f.kems[f.obs[3]], f.obs[3], [][]byte{wrong}, f.pub); err == nil || !strings.Contains(err.Error(), "is sealed to") {
		t.Fatalf("share opened by a node it is not addressed to: %v", err)
	}
	var r ReleasedShare
	if err := json.Unmarshal(wrong, &r); err != nil {
		t.Fatal(err)
	}
	r.To = f.obs[3]
	relabelled, err := r.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Open(f.kems[f.obs[3]], f.obs[3], [][]byte{relabelled}, f.pub); err == nil || !strings.Contains(err.Error(), "signature does not verify") {
		t.Fatalf("relabelled share: %v", err)
	}
	// An observer cannot open another observer's share.
	if err := l.CheckShare(f.kems[f.obs[1]], f.obs[0]); err == nil {
		t.Fatal("observer 1's key opened observer 0's share")
	}
}

func TestLetterTampered(t *testing.T) {
	f := newFixture(t)
	l := f.sealLetter()
	st := f.handedOver()
	released := [][]byte{f.release(l, st, f.obs[0]), f.release(l, st, f.obs[1]), f.release(l, st, f.obs[2])}

	// A flipped ciphertext byte: the signature catches it, and were the letter's
	// signature not checked, AES-GCM would.
	var m Letter
	if err := json.Unmarshal(l.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	m.Ciphertext[5] ^= 1
	b, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	bad, err := ParseLetter(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := bad.Verify(f.charter, f.pub); err == nil || !strings.Contains(err.Error(), "signature does not verify") {
		t.Fatalf("tampered letter verified: %v", err)
	}
	bad.raw, bad.hash = l.raw, l.hash // the shares name the genuine letter; only the ciphertext differs
	if _, err := bad.Open(f.kems[f.other], f.other, released, f.pub); err == nil || !strings.Contains(err.Error(), "does not decrypt") {
		t.Fatalf("tampered ciphertext: %v", err)
	}
	// A released share altered in transit no longer verifies.
	var r ReleasedShare
	if err := json.Unmarshal(released[0], &r); err != nil {
		t.Fatal(err)
	}
	r.Sealed[1200-1] ^= 1
	altered, err := r.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Open(f.kems[f.other], f.other, [][]byte{altered, released[1], released[2]}, f.pub); err == nil || !strings.Contains(err.Error(), "2 valid shares") {
		t.Fatalf("altered share: %v", err)
	}
}

func TestLetterReleaseRefuses(t *testing.T) {
	f := newFixture(t)
	l := f.sealLetter()
	o := f.obs
	pending := f.state(80, f.suspicion(o[0], 0, 60), f.suspicion(o[1], 0, 65), f.suspicion(o[2], 0, 70))
	offered := f.state(100, f.suspicion(o[0], 0, 60), f.suspicion(o[1], 0, 65), f.suspicion(o[2], 0, 70))
	cases := []struct {
		name   string
		st     RoleState
		node   string
		reason string
	}{
		{"before the handover", pending, o[0], "only after a handover"},
		{"before anyone accepted", offered, o[0], "no successor has accepted"},
		{"not an observer", f.handedOver(), f.other, "holds no share"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := l.Release(c.st, f.kems[c.node], f.keys[c.node], c.node, f.kemPub, f.now(111))
			if err == nil || !strings.Contains(err.Error(), c.reason) {
				t.Fatalf("Release: %v, want an error containing %q", err, c.reason)
			}
		})
	}
	// Someone else's node key: the share does not open.
	if _, err := l.Release(f.handedOver(), f.kems[o[1]], f.keys[o[0]], o[0], f.kemPub, f.now(111)); err == nil {
		t.Fatal("released with another node's KEM key")
	}
	if _, err := l.Release(f.handedOver(), f.kems[o[0]], f.keys[o[0]], o[0], KEMMap{}, f.now(111)); err == nil || !strings.Contains(err.Error(), "no KEM key is known") {
		t.Fatalf("released without the successor node's KEM key: %v", err)
	}
}

func TestSealLetterRefuses(t *testing.T) {
	f := newFixture(t)
	if _, err := SealLetter(f.keys[f.obs[0]], f.obs[0], f.charter, "dr.li", letterText, f.kemPub, f.now(1)); err == nil || !strings.Contains(err.Error(), "only the holder") {
		t.Fatalf("a successor deposited a letter: %v", err)
	}
	missing := KEMMap{}
	for k, v := range f.kemPub {
		missing[k] = v
	}
	delete(missing, f.obs[2])
	if _, err := SealLetter(f.keys[f.obs[0]], f.obs[0], f.charter, "dr.okafor", letterText, missing, f.now(1)); err == nil || !strings.Contains(err.Error(), f.obs[2]) {
		t.Fatalf("sealed without an observer's KEM key: %v", err)
	}
	if _, err := SealLetter(f.keys[f.obs[0]], f.obs[0], f.charter, "dr.okafor", make([]byte, MaxLetterPlaintext+1), f.kemPub, f.now(1)); err == nil || !strings.Contains(err.Error(), "MaxLetterPlaintext") {
		t.Fatalf("oversized letter: %v", err)
	}
	// A letter for one charter does not verify under its successor version.
	l := f.sealLetter()
	next := f.signCharter(Charter{Tenant: "nhs-trust-a", Name: "caldicott-guardian", Seq: 1, Prev: f.charter.Hash(), Holder: "dr.okafor",
		Successors: []string{"dr.li"}, Observers: f.obs, K: 3, Admins: []string{}, SuspectAfter: 60, Wait: 30, AcceptWithin: 20,
		Author: "admin.b", Node: f.other, Time: f.at(1)})
	if err := l.Verify(next, f.pub); err == nil || !strings.Contains(err.Error(), "a new charter needs a new letter") {
		t.Fatalf("letter under a new charter: %v", err)
	}
}

// hpke's own view: the sealed size the format fixes is what Seal makes.
func TestSealedShareSize(t *testing.T) {
	f := newFixture(t)
	_, kdf, ae := kemSuite()
	c, err := hpke.Seal(f.kemPub[f.obs[0]], kdf, ae, []byte("info"), make([]byte, shareSize))
	if err != nil {
		t.Fatal(err)
	}
	if len(c) != sealedShareSize {
		t.Fatalf("sealed share is %d bytes, the format says %d", len(c), sealedShareSize)
	}
}
