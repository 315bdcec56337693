package ledger

import (
	"bytes"
	"context"
	"encoding/base64"
	"strings"
	"testing"
)

// A checkpoint with a good and a failing line of one node key is refused, whichever
// comes first (OAR/1 section 8; issue 12, item 3).
func TestParseCheckpointRejectsAnyFailingLineOfTheNodeKey(t *testing.T) {
	node := newTestNode(t)
	dir := t.TempDir()
	l := openTest(t, dir, node)
	appendN(t, l, 3, 1)
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	cp, err := newStore(dir + "/" + logDirName).checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseCheckpoint(cp, node.ID(), node.Public()); err != nil {
		t.Fatal(err)
	}
	split := bytes.Index(cp, []byte("\n\n")) + 2
	lines := strings.Split(strings.TrimSuffix(string(cp[split:]), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("want two signature lines, got %q", lines)
	}
	for which, kind := range []string{"Ed25519", "ML-DSA-65"} {
		name, b64, _ := strings.Cut(strings.TrimPrefix(lines[which], "— "), " ")
		sig, _ := base64.StdEncoding.DecodeString(b64)
		sig[10] ^= 0x40
		bad := "— " + name + " " + base64.StdEncoding.EncodeToString(sig) + "\n"
		for _, doc := range [][]byte{
			append(append([]byte(nil), cp...), bad...),
			append(append(append([]byte(nil), cp[:split]...), bad...), cp[split:]...),
		} {
			_, err := ParseCheckpoint(doc, node.ID(), node.Public())
			if err == nil || !strings.Contains(err.Error(), "does not verify") {
				t.Errorf("%s: a failing line beside a good one: %v", kind, err)
			}
		}
	}
	// Without one of the two signatures, the checkpoint is refused too.
	for which, kind := range []string{"Ed25519", "ML-DSA-65"} {
		doc := string(cp[:split]) + lines[1-which] + "\n"
		if _, err := ParseCheckpoint([]byte(doc), node.ID(), node.Public()); err == nil || !strings.Contains(err.Error(), kind) {
			t.Errorf("without the %s line: %v", kind, err)
		}
	}
}
