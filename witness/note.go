package witness

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// SPEC: https://c2sp.org/signed-note — "a verifier MUST reject a note with a signature
// line for a known key that fails to verify".

// OpenNote is note.Open with every signature line of a known key checked. note.Open
// lets the first line of a (key name, key ID) pair decide and skips later lines of the
// same pair unverified, so a note carrying one good and one bad signature of a key was
// accepted; OpenNote rejects it with a *note.InvalidSignatureError naming the key.
// Lines of keys not in known are ignored, as note.Open ignores them.
func OpenNote(msg []byte, known note.Verifiers) (*note.Note, error) {
	n, err := note.Open(msg, known)
	if err != nil {
		return nil, err
	}
	good := make(map[note.Signature]bool, len(n.Sigs))
	for _, s := range n.Sigs {
		good[s] = true
	}
	// note.Open checked the framing: the text, a blank line, then signature lines.
	sigs := msg[len(n.Text)+1:]
	for len(sigs) > 0 {
		line, rest, _ := bytes.Cut(sigs, []byte("\n"))
		sigs = rest
		name, b64, _ := strings.Cut(strings.TrimPrefix(string(line), "— "), " ")
		sig, err := base64.StdEncoding.DecodeString(b64)
		if err != nil || len(sig) < 5 {
			return nil, errors.New("malformed note") // note.Open refuses such lines first
		}
		s := note.Signature{Name: name, Hash: binary.BigEndian.Uint32(sig), Base64: b64}
		if good[s] {
			continue
		}
		v, err := known.Verifier(name, s.Hash)
		if err != nil {
			continue // a key the caller does not know
		}
		if !v.Verify([]byte(n.Text), sig[4:]) {
			return nil, &note.InvalidSignatureError{Name: name, Hash: s.Hash}
		}
		good[s] = true
	}
	return n, nil
}
