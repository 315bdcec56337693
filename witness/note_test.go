package witness

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

// badLine is a signature line of key (name, id) taken from good, its signature altered.
func badLine(t *testing.T, good []byte, which int) string {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(string(good[bytes.Index(good, []byte("\n\n"))+2:]), "\n"), "\n")
	name, b64, _ := strings.Cut(strings.TrimPrefix(lines[which], "— "), " ")
	sig, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatal(err)
	}
	sig[len(sig)-1] ^= 1
	return "— " + name + " " + base64.StdEncoding.EncodeToString(sig) + "\n"
}

// A line of a known key that fails is fatal wherever it stands (C2SP signed-note),
// not only when it comes first (issue 12, item 3).
func TestOpenNoteRejectsAnyFailingLineOfAKnownKey(t *testing.T) {
	l := newSiosLog(t, "sios/audit/node_x", 4)
	good := l.checkpoint(4)
	vs := note.VerifierList(l.verifiers...)
	if _, err := OpenNote(good, vs); err != nil {
		t.Fatal(err)
	}
	for which, kind := range []string{"Ed25519", "ML-DSA-65"} {
		for _, place := range []string{"after the good line", "before the good line"} {
			bad := badLine(t, good, which)
			var doc []byte
			if place == "after the good line" {
				doc = append(append([]byte(nil), good...), bad...)
			} else {
				i := bytes.Index(good, []byte("\n\n")) + 2
				doc = append(append(append([]byte(nil), good[:i]...), bad...), good[i:]...)
			}
			_, err := OpenNote(doc, vs)
			var invalid *note.InvalidSignatureError
			if !errors.As(err, &invalid) {
				t.Errorf("%s line %s: %v, want an invalid signature error", kind, place, err)
			}
		}
	}
	// Repeating a good line, and lines of keys nobody configured, are fine.
	other := newStandardLog(t, "sios/audit/node_x", 4)
	foreign := sign(t, l.body(4), other.signers...)
	doc := append(append([]byte(nil), good...), foreign[bytes.Index(foreign, []byte("\n\n"))+2:]...)
	doc = append(doc, good[bytes.Index(good, []byte("\n\n"))+2:]...)
	if _, err := OpenNote(doc, vs); err != nil {
		t.Fatalf("repeated good lines and a foreign key: %v", err)
	}
}

func TestWitnessRefusesACheckpointWithAFailingLine(t *testing.T) {
	l := newSiosLog(t, "sios/audit/node_x", 4)
	w := newTestWitness(t, t.TempDir(), l)
	good := l.checkpoint(4)
	doc := append(append([]byte(nil), good...), badLine(t, good, 0)...)
	if _, err := w.AddCheckpoint(context.Background(), 0, nil, doc); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("AddCheckpoint: %v, want ErrUnauthenticated", err)
	}
	if _, err := w.AddCheckpoint(context.Background(), 0, nil, good); err != nil {
		t.Fatal(err)
	}
}

func FuzzOpenNote(f *testing.F) {
	l := newSiosLog(f, "sios/audit/node_x", 2)
	good := l.checkpoint(2)
	f.Add(good)
	f.Add(append(append([]byte(nil), good...), good[bytes.Index(good, []byte("\n\n"))+2:]...))
	vs := note.VerifierList(l.verifiers...)
	f.Fuzz(func(t *testing.T, msg []byte) {
		n, err := OpenNote(msg, vs)
		if err != nil {
			return
		}
		if _, err := note.Open(msg, vs); err != nil {
			t.Fatalf("OpenNote accepted what note.Open refuses: %v", err)
		}
		if n.Text != string(good[:bytes.Index(good, []byte("\n\n"))+1]) {
			t.Fatalf("a note the log never signed verified: %q", msg)
		}
	})
}
