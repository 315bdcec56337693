package identity

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"

	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
	"golang.org/x/mod/sumdb/note"
)

// SPEC: https://c2sp.org/signed-note
//
// Checkpoints carry two signed-note signatures from the node key: the standard Ed25519
// type (0x01), which witnesses and tlog tooling understand, and ML-DSA-65 under the
// extension type 0xff followed by the identifier MLDSA65NoteID. Both sign the note text.

// MLDSA65NoteID follows the 0xff signature type byte in the ML-DSA-65 key ID derivation.
const MLDSA65NoteID = "sios.dev/ml-dsa-65"

const (
	noteTypeEd25519   = 0x01
	noteTypeExtension = 0xff
)

// NoteKeyID computes a signed-note key ID: SHA-256(name || 0x0A || type || key)[:4].
func NoteKeyID(name string, typ []byte, key []byte) uint32 {
	h := sha256.New()
	h.Write([]byte(name))
	h.Write([]byte{'\n'})
	h.Write(typ)
	h.Write(key)
	return binary.BigEndian.Uint32(h.Sum(nil))
}

func mldsaNoteType() []byte { return append([]byte{noteTypeExtension}, MLDSA65NoteID...) }

// NoteSigners returns the Ed25519 and ML-DSA-65 signed-note signers for the given
// key name (a checkpoint's origin line).
func (k *PrivateKey) NoteSigners(name string) (ed, ml note.Signer) {
	ed = &noteSigner{name: name, hash: NoteKeyID(name, []byte{noteTypeEd25519}, k.pub.Ed25519),
		sign: func(msg []byte) ([]byte, error) { return ed25519.Sign(k.ed, msg), nil }}
	ml = &noteSigner{name: name, hash: NoteKeyID(name, mldsaNoteType(), k.pub.MLDSA65.Bytes()),
		sign: func(msg []byte) ([]byte, error) {
			sig := make([]byte, mldsa65.SignatureSize)
			err := mldsa65.SignTo(k.mldsa, msg, nil, false, sig)
			return sig, err
		}}
	return ed, ml
}

// NoteVerifiers returns the Ed25519 and ML-DSA-65 signed-note verifiers for name.
func (p PublicKey) NoteVerifiers(name string) (ed, ml note.Verifier) {
	ed = &noteVerifier{name: name, hash: NoteKeyID(name, []byte{noteTypeEd25519}, p.Ed25519),
		verify: func(msg, sig []byte) bool { return ed25519.Verify(p.Ed25519, msg, sig) }}
	ml = &noteVerifier{name: name, hash: NoteKeyID(name, mldsaNoteType(), p.MLDSA65.Bytes()),
		verify: func(msg, sig []byte) bool { return mldsa65.Verify(p.MLDSA65, msg, nil, sig) }}
	return ed, ml
}

// Ed25519VerifierKey is the standard vkey string (name+hash+base64) for the Ed25519 key,
// which tools such as the Go checksum-database client accept.
func (p PublicKey) Ed25519VerifierKey(name string) (string, error) {
	return note.NewEd25519VerifierKey(name, p.Ed25519)
}

type noteSigner struct {
	name string
	hash uint32
	sign func([]byte) ([]byte, error)
}

func (s *noteSigner) Name() string                    { return s.name }
func (s *noteSigner) KeyHash() uint32                 { return s.hash }
func (s *noteSigner) Sign(msg []byte) ([]byte, error) { return s.sign(msg) }

type noteVerifier struct {
	name   string
	hash   uint32
	verify func(msg, sig []byte) bool
}

func (v *noteVerifier) Name() string                { return v.name }
func (v *noteVerifier) KeyHash() uint32             { return v.hash }
func (v *noteVerifier) Verify(msg, sig []byte) bool { return v.verify(msg, sig) }
