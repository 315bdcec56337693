package fleet

import (
	"bytes"
	"strings"
	"testing"

	"github.com/sios-project/sios/succession"
)

// successionDocs signs a charter (by a1), a presence (by a2) and a1's KEM statement.
func successionDocs(t testing.TB, fx *fleetFixture) (charter, presence, kem []byte) {
	t.Helper()
	var err error
	charter, err = succession.SignCharter(fx.a1.Key, succession.Charter{Tenant: "trust-a", Name: "guardian", Holder: "dr.okafor",
		Successors: []string{"dr.li"}, Observers: []string{fx.a1.ID(), fx.a2.ID()}, K: 2, SuspectAfter: 60, Wait: 30, AcceptWithin: 20,
		Author: "admin", Node: fx.a1.ID(), Time: succession.FormatTime(t0)})
	if err != nil {
		t.Fatal(err)
	}
	presence, err = succession.SignPresence(fx.a2.Key, succession.Presence{Tenant: "trust-a", Role: "guardian", Holder: "dr.okafor",
		Node: fx.a2.ID(), Seen: succession.FormatTime(t0), Time: succession.FormatTime(t0)})
	if err != nil {
		t.Fatal(err)
	}
	k, err := succession.GenerateKEMKey()
	if err != nil {
		t.Fatal(err)
	}
	kem, err = succession.SignKEM(fx.a1.Key, fx.a1.ID(), k.Public(), t0)
	if err != nil {
		t.Fatal(err)
	}
	return charter, presence, kem
}

func TestSuccessionRecordsCarryTheDocumentAsSigned(t *testing.T) {
	fx := newFixture(t)
	charter, presence, kem := successionDocs(t, fx)
	fb := newFeed(t, fx.a1)
	recs := [][]byte{
		fb.add(KindRole, NewSuccessionBody(charter)),
		fb.add(KindRole, NewSuccessionBody(presence)), // signed by a2, carried by a1: the document's signature counts
		fb.add(KindKEM, NewSuccessionBody(kem)),
	}
	l := NewLog()
	mustAdd(t, l, fx.onlyA, fb.recs...)
	for i, want := range [][]byte{charter, presence, kem} {
		r, err := Parse(recs[i])
		if err != nil {
			t.Fatal(err)
		}
		body, ok := r.Content().(*SuccessionBody)
		if !ok {
			t.Fatalf("record %d content is %T", i, r.Content())
		}
		if !bytes.Equal(body.Document(), want) {
			t.Fatalf("record %d carries\n%s\nwant\n%s", i, body.Document(), want)
		}
		if !bytes.Contains(recs[i], want) {
			t.Fatalf("record %d does not hold the document's bytes verbatim", i)
		}
	}
	if v, _ := l.NodeView(fx.a1.ID()); v.Seq != 3 {
		t.Fatalf("view seq %d, want 3", v.Seq)
	}
}

func TestSuccessionRecordsRefuse(t *testing.T) {
	fx := newFixture(t)
	charter, presence, kem := successionDocs(t, fx)
	fb := newFeed(t, fx.a1)
	tests := []struct {
		name string
		kind string
		body any
		err  string
	}{
		{"kem statement in a role record", KindRole, NewSuccessionBody(kem), "goes in a kem record"},
		{"charter in a kem record", KindKEM, NewSuccessionBody(charter), "carries only a node-kem/1"},
		{"not a succession document", KindRole, map[string]string{"v": "role-unknown/1"}, "not one of"},
		{"member added", KindRole, NewSuccessionBody(bytes.Replace(presence, []byte(`{"holder"`), []byte(`{"extra":1,"holder"`), 1)), "not part of"},
		{"tampered member", KindRole, NewSuccessionBody(bytes.Replace(charter, []byte(`"k":2`), []byte(`"k":9`), 1)), "k is 9"},
		{"not an object", KindRole, []string{"x"}, "JSON object"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewRecord(fx.a1.Key, fx.a1.ID(), 1, fb.prev(), tc.kind, tc.body, t0)
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("NewRecord = %v, want %q", err, tc.err)
			}
		})
	}
	// A record whose carried document is not canonical is refused by Parse, even with a
	// valid record signature over it.
	good := fb.next(KindRole, NewSuccessionBody(presence))
	spaced := bytes.Replace(good, []byte(`"body":{"holder"`), []byte(`"body":{ "holder"`), 1)
	if _, err := Parse(spaced); err == nil {
		t.Fatal("a record with a non-canonical body parsed")
	}
}

// FuzzSuccessionBody: whatever a role or kem record accepts as its body is a document
// succession's own parser accepts, and re-encodes to exactly its input.
func FuzzSuccessionBody(f *testing.F) {
	fx := newFixture(f)
	charter, presence, kem := successionDocs(f, fx)
	for _, d := range [][]byte{charter, presence, kem, []byte(`{}`), []byte(`{"v":"role-presence/1"}`)} {
		f.Add(d, false)
		f.Add(d, true)
	}
	f.Fuzz(func(t *testing.T, doc []byte, isKEM bool) {
		kind := KindRole
		if isKEM {
			kind = KindKEM
		}
		if len(doc) == 0 || doc[0] != '{' {
			return
		}
		b, err := decodeSuccession(kind, doc)
		if err != nil {
			return
		}
		if _, err := succession.ParseDocument(b.Document()); err != nil {
			t.Fatalf("body accepted that succession refuses: %v", err)
		}
		again, err := canonical(b)
		if err != nil {
			t.Fatalf("accepted body does not encode: %v", err)
		}
		if !bytes.Equal(again, doc) {
			t.Fatalf("body changed on re-encoding:\n%s\n%s", doc, again)
		}
	})
}
