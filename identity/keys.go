// Package identity holds a node's keys and the institution root that enrols it.
//
// A node signs with two algorithms at once: ML-DSA-65 (FIPS 204, post-quantum) for
// long-term evidence, and Ed25519 for the transparency-log ecosystem (signed notes,
// witnesses). Every signature sios makes is over a domain-separated message
// (see Message), so a signature made for one purpose can never be replayed as another.
//
// Secret key files are written 0600 and refused when group or others can read them.
package identity

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
	"github.com/sios-project/sios/jcs"
)

// Key kinds stored in key files.
const (
	KindNode = "node"
	KindRoot = "root"
)

const keyFileVersion = "sios-key/1"

// PrivateKey is a dual-algorithm signing key: ML-DSA-65 and Ed25519, both derived
// from 32-byte seeds that are the only secret material stored.
type PrivateKey struct {
	kind      string
	mldsaSeed [mldsa65.SeedSize]byte
	edSeed    [ed25519.SeedSize]byte

	mldsa *mldsa65.PrivateKey
	ed    ed25519.PrivateKey
	pub   PublicKey
}

// PublicKey is the public half of a PrivateKey.
type PublicKey struct {
	MLDSA65 *mldsa65.PublicKey
	Ed25519 ed25519.PublicKey
}

// Signature holds one signature per algorithm over the same message.
type Signature struct {
	MLDSA65 []byte `json:"ml-dsa-65"`
	Ed25519 []byte `json:"ed25519"`
}

// GenerateKey makes a fresh key of the given kind from the system's CSPRNG.
func GenerateKey(kind string) (*PrivateKey, error) {
	var m [mldsa65.SeedSize]byte
	var e [ed25519.SeedSize]byte
	if _, err := rand.Read(m[:]); err != nil {
		return nil, err
	}
	if _, err := rand.Read(e[:]); err != nil {
		return nil, err
	}
	return newKey(kind, m, e), nil
}

// KeyFromSeeds rebuilds a key from its seeds. Tests use it for reproducible vectors.
func KeyFromSeeds(kind string, mldsaSeed [mldsa65.SeedSize]byte, edSeed [ed25519.SeedSize]byte) *PrivateKey {
	return newKey(kind, mldsaSeed, edSeed)
}

func newKey(kind string, m [mldsa65.SeedSize]byte, e [ed25519.SeedSize]byte) *PrivateKey {
	mpk, msk := mldsa65.NewKeyFromSeed(&m)
	ed := ed25519.NewKeyFromSeed(e[:])
	return &PrivateKey{
		kind: kind, mldsaSeed: m, edSeed: e, mldsa: msk, ed: ed,
		pub: PublicKey{MLDSA65: mpk, Ed25519: ed.Public().(ed25519.PublicKey)},
	}
}

// Kind is KindNode or KindRoot.
func (k *PrivateKey) Kind() string { return k.kind }

// Public returns the public keys.
func (k *PrivateKey) Public() PublicKey { return k.pub }

// Ed25519 exposes the Ed25519 key for signed-note checkpoint signing.
func (k *PrivateKey) Ed25519() ed25519.PrivateKey { return k.ed }

// Message is the exact byte string both algorithms sign: the domain, a newline, the body.
// Domains are fixed strings such as "oar/1 seal"; see docs/open-audit-record.md.
func Message(domain string, body []byte) []byte {
	m := make([]byte, 0, len(domain)+1+len(body))
	m = append(m, domain...)
	m = append(m, '\n')
	return append(m, body...)
}

// Sign signs body under domain with both algorithms. ML-DSA-65 signing is the
// deterministic variant of FIPS 204, so equal inputs give equal signatures.
func (k *PrivateKey) Sign(domain string, body []byte) Signature {
	msg := Message(domain, body)
	sig := make([]byte, mldsa65.SignatureSize)
	if err := mldsa65.SignTo(k.mldsa, msg, nil, false, sig); err != nil {
		panic("identity: ML-DSA-65 sign: " + err.Error()) // only fails on a context > 255 bytes
	}
	return Signature{MLDSA65: sig, Ed25519: ed25519.Sign(k.ed, msg)}
}

// ErrBadSignature is returned when either signature fails to verify.
var ErrBadSignature = errors.New("signature does not verify")

// Verify checks both signatures over body under domain. Both must verify.
func (p PublicKey) Verify(domain string, body []byte, sig Signature) error {
	msg := Message(domain, body)
	if p.MLDSA65 == nil || len(p.Ed25519) != ed25519.PublicKeySize {
		return errors.New("incomplete public key")
	}
	if len(sig.MLDSA65) != mldsa65.SignatureSize || !mldsa65.Verify(p.MLDSA65, msg, nil, sig.MLDSA65) {
		return fmt.Errorf("ML-DSA-65 %w", ErrBadSignature)
	}
	if len(sig.Ed25519) != ed25519.SignatureSize || !ed25519.Verify(p.Ed25519, msg, sig.Ed25519) {
		return fmt.Errorf("Ed25519 %w", ErrBadSignature)
	}
	return nil
}

// Equal reports whether both public keys match.
func (p PublicKey) Equal(q PublicKey) bool {
	return p.MLDSA65 != nil && q.MLDSA65 != nil && p.MLDSA65.Equal(q.MLDSA65) && p.Ed25519.Equal(q.Ed25519)
}

// ID derives a stable identifier from the public keys: prefix, then the first 16 bytes
// of SHA-256("sios-id/1" || 0x0A || prefix || 0x0A || mldsa65 || ed25519) in lowercase base32.
func (p PublicKey) ID(prefix string) string {
	h := sha256.New()
	h.Write([]byte("sios-id/1\n" + prefix + "\n"))
	h.Write(p.MLDSA65.Bytes())
	h.Write(p.Ed25519)
	sum := h.Sum(nil)
	return prefix + "_" + strings.ToLower(b32.EncodeToString(sum[:16]))
}

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// PublicKeyJSON is the published form of a public key pair.
type PublicKeyJSON struct {
	MLDSA65 string `json:"mldsa65_public_key"`
	Ed25519 string `json:"ed25519_public_key"`
}

// JSON returns the base64 (standard, padded) encodings of both keys.
func (p PublicKey) JSON() PublicKeyJSON {
	return PublicKeyJSON{
		MLDSA65: base64.StdEncoding.EncodeToString(p.MLDSA65.Bytes()),
		Ed25519: base64.StdEncoding.EncodeToString(p.Ed25519),
	}
}

// Parse decodes a published key pair.
func (j PublicKeyJSON) Parse() (PublicKey, error) {
	m, err := base64.StdEncoding.DecodeString(j.MLDSA65)
	if err != nil || len(m) != mldsa65.PublicKeySize {
		return PublicKey{}, fmt.Errorf("mldsa65_public_key: want %d bytes of base64", mldsa65.PublicKeySize)
	}
	e, err := base64.StdEncoding.DecodeString(j.Ed25519)
	if err != nil || len(e) != ed25519.PublicKeySize {
		return PublicKey{}, fmt.Errorf("ed25519_public_key: want %d bytes of base64", ed25519.PublicKeySize)
	}
	var mp mldsa65.PublicKey
	if err := mp.UnmarshalBinary(m); err != nil {
		return PublicKey{}, fmt.Errorf("mldsa65_public_key: %v", err)
	}
	return PublicKey{MLDSA65: &mp, Ed25519: ed25519.PublicKey(e)}, nil
}

type keyFile struct {
	V         string `json:"v"`
	Kind      string `json:"kind"`
	MLDSASeed []byte `json:"mldsa65_seed"`
	EdSeed    []byte `json:"ed25519_seed"`
}

// maxKeyFile bounds what LoadKey reads: a key file is a few hundred bytes.
const maxKeyFile = 16 << 10

// KeyFileError names the key file at fault and how to fix it.
type KeyFileError struct {
	Path string
	Err  error
	Hint string
}

func (e *KeyFileError) Error() string { return fmt.Sprintf("key file %s: %v", e.Path, e.Err) }
func (e *KeyFileError) Unwrap() error { return e.Err }

// SealedKeyVersion is the "v" of a node key file whose seeds are sealed to a TPM 2.0
// (written and read by identity/tpm; see docs/attestation.md).
const SealedKeyVersion = "sios-tpm-key/1"

// ErrKeySealed is returned, inside a *KeyFileError, by LoadKey and Load when the key
// file holds seeds sealed to a TPM: only identity/tpm, with that TPM, can open it.
var ErrKeySealed = errors.New("holds a key sealed to a TPM")

// Seeds returns the secret seeds the key is derived from. It exists so that
// identity/tpm can seal them to a TPM; nothing else needs them.
func (k *PrivateKey) Seeds() (mldsaSeed [mldsa65.SeedSize]byte, edSeed [ed25519.SeedSize]byte) {
	return k.mldsaSeed, k.edSeed
}

// SaveKey writes the key to path with mode 0600. It never overwrites an existing file.
func SaveKey(path string, k *PrivateKey) error {
	b, err := json.MarshalIndent(keyFile{V: keyFileVersion, Kind: k.kind, MLDSASeed: k.mldsaSeed[:], EdSeed: k.edSeed[:]}, "", "  ")
	if err != nil {
		return err
	}
	return writeKeyFile(path, append(b, '\n'))
}

// writeKeyFile creates path with mode 0600 holding b, and fsyncs it. It never
// overwrites an existing file.
func writeKeyFile(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return &KeyFileError{Path: path, Err: err}
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return &KeyFileError{Path: path, Err: err}
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return &KeyFileError{Path: path, Err: err}
	}
	return f.Close()
}

// LoadKey reads a key file, refusing one that group or others may read, and checks its kind.
func LoadKey(path, wantKind string) (*PrivateKey, error) {
	b, err := ReadKeyFile(path)
	if err != nil {
		return nil, err
	}
	// The version first, leniently, to send a sealed key file to its own reader; then
	// the plain file strictly (jcs.DecodeStrict): a repeated seed or a differently
	// cased member is refused naming it, not read as the last or matched anyway.
	var kf keyFile
	if err := json.Unmarshal(b, &struct {
		V *string `json:"v"`
	}{&kf.V}); err != nil {
		return nil, &KeyFileError{Path: path, Err: fmt.Errorf("is corrupt: %v", err)}
	}
	if kf.V == keyFileVersion {
		if err := jcs.DecodeStrict(b, &kf); err != nil {
			return nil, &KeyFileError{Path: path, Err: fmt.Errorf("is corrupt: %v", strings.TrimPrefix(err.Error(), "jcs: "))}
		}
	}
	if kf.V == SealedKeyVersion {
		return nil, &KeyFileError{Path: path, Err: ErrKeySealed,
			Hint: "it can only be opened with the TPM it was sealed to (sios up --tpm DEVICE)"}
	}
	if kf.V != keyFileVersion {
		return nil, &KeyFileError{Path: path, Err: fmt.Errorf("has version %q, want %q", kf.V, keyFileVersion)}
	}
	if kf.Kind != wantKind {
		return nil, &KeyFileError{Path: path, Err: fmt.Errorf("holds a %s key, want a %s key", kf.Kind, wantKind)}
	}
	if len(kf.MLDSASeed) != mldsa65.SeedSize || len(kf.EdSeed) != ed25519.SeedSize {
		return nil, &KeyFileError{Path: path, Err: errors.New("is corrupt: seeds have the wrong length")}
	}
	return newKey(kf.Kind, [mldsa65.SeedSize]byte(kf.MLDSASeed), [ed25519.SeedSize]byte(kf.EdSeed)), nil
}

// ReadKeyFile returns the bytes of a key file (plain or sealed) with the checks every
// key file gets: a regular file, not readable or writable by group or others, at most
// 16 KiB. Errors are *KeyFileError.
func ReadKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, &KeyFileError{Path: path, Err: os.ErrNotExist}
		}
		return nil, &KeyFileError{Path: path, Err: err}
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, &KeyFileError{Path: path, Err: err}
	}
	if !st.Mode().IsRegular() {
		return nil, &KeyFileError{Path: path, Err: errors.New("is not a regular file")}
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, &KeyFileError{Path: path,
			Err:  fmt.Errorf("is readable or writable by group or others (mode %04o)", perm),
			Hint: fmt.Sprintf("restrict it with: chmod 600 %s", path)}
	}
	b := make([]byte, maxKeyFile+1)
	n, err := io.ReadFull(f, b)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !(errors.Is(err, io.EOF) && n == 0) {
		return nil, &KeyFileError{Path: path, Err: err}
	}
	if n > maxKeyFile {
		return nil, &KeyFileError{Path: path, Err: fmt.Errorf("is larger than %d bytes: not a sios key file", maxKeyFile)}
	}
	return b[:n], nil
}
