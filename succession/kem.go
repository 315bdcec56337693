package succession

import (
	"crypto/hpke"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/internal/files"
)

// A node receives sealed letter shares with an HPKE key pair of its own (RFC 9180, KEM
// MLKEM768-X25519 of draft-ietf-hpke-pq, "X-Wing": ML-KEM-768 and X25519 together, so
// a share stays sealed unless both break). The private key is a 32-byte seed in its own
// file in the data directory, beside the node's signing key; the node publishes the
// public key in a statement it signs (node-kem/1), which the fleet carries to the other
// nodes.
const (
	KEMVersion = "node-kem/1"
	KEMDomain  = "node-kem/1 key" // identity.PrivateKey.Sign domain of a KEM statement
	// KEMName is the only KEM of node-kem/1.
	KEMName = "MLKEM768-X25519"
	// KEMKeyFile is the KEM private key's file inside a data directory.
	KEMKeyFile = "kem.key"

	kemFileVersion = "sios-kem-key/1"
	kemSeedSize    = 32
)

// hpke suite of every seal in this package.
func kemSuite() (hpke.KEM, hpke.KDF, hpke.AEAD) {
	return hpke.MLKEM768X25519(), hpke.HKDFSHA256(), hpke.AES256GCM()
}

// KEMKey is a node's HPKE private key.
type KEMKey struct {
	priv hpke.PrivateKey
	seed []byte
}

// GenerateKEMKey makes a fresh key from the system's CSPRNG.
func GenerateKEMKey() (*KEMKey, error) {
	kem, _, _ := kemSuite()
	priv, err := kem.GenerateKey()
	if err != nil {
		return nil, err
	}
	seed, err := priv.Bytes()
	if err != nil {
		return nil, err
	}
	return &KEMKey{priv: priv, seed: seed}, nil
}

// KEMKeyFromSeed rebuilds a key from its 32-byte seed. Tests use it for reproducible
// vectors.
func KEMKeyFromSeed(seed []byte) (*KEMKey, error) {
	if len(seed) != kemSeedSize {
		return nil, fmt.Errorf("KEM key seed is %d bytes, want %d", len(seed), kemSeedSize)
	}
	kem, _, _ := kemSuite()
	priv, err := kem.NewPrivateKey(seed)
	if err != nil {
		return nil, err
	}
	return &KEMKey{priv: priv, seed: append([]byte(nil), seed...)}, nil
}

// Public is the key others seal to.
func (k *KEMKey) Public() hpke.PublicKey { return k.priv.PublicKey() }

type kemFile struct {
	V    string `json:"v"`
	KEM  string `json:"kem"`
	Seed []byte `json:"seed"`
}

// SaveKEMKey writes k to path with mode 0600. It never overwrites an existing file.
func SaveKEMKey(path string, k *KEMKey) error {
	b, err := json.MarshalIndent(kemFile{V: kemFileVersion, KEM: KEMName, Seed: k.seed}, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return &identity.KeyFileError{Path: path, Err: err}
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return &identity.KeyFileError{Path: path, Err: err}
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return &identity.KeyFileError{Path: path, Err: err}
	}
	if err := f.Close(); err != nil {
		return err
	}
	return files.SyncDir(filepath.Dir(path))
}

// LoadKEMKey reads a KEM key file, refusing one that group or others may read.
func LoadKEMKey(path string) (*KEMKey, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, &identity.KeyFileError{Path: path, Err: os.ErrNotExist}
		}
		return nil, &identity.KeyFileError{Path: path, Err: err}
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, &identity.KeyFileError{Path: path, Err: err}
	}
	if !st.Mode().IsRegular() {
		return nil, &identity.KeyFileError{Path: path, Err: errors.New("is not a regular file")}
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, &identity.KeyFileError{Path: path,
			Err:  fmt.Errorf("is readable or writable by group or others (mode %04o)", perm),
			Hint: fmt.Sprintf("restrict it with: chmod 600 %s", path)}
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxKEMKeyFile+1))
	if err != nil {
		return nil, &identity.KeyFileError{Path: path, Err: err}
	}
	if len(b) > MaxKEMKeyFile {
		return nil, &identity.KeyFileError{Path: path, Err: fmt.Errorf("is larger than %d bytes (MaxKEMKeyFile): not a sios KEM key file", MaxKEMKeyFile)}
	}
	var kf kemFile
	if err := json.Unmarshal(b, &kf); err != nil {
		return nil, &identity.KeyFileError{Path: path, Err: fmt.Errorf("is corrupt: %v", err)}
	}
	if kf.V != kemFileVersion {
		return nil, &identity.KeyFileError{Path: path, Err: fmt.Errorf("has version %q, want %q", short(kf.V), kemFileVersion)}
	}
	if kf.KEM != KEMName {
		return nil, &identity.KeyFileError{Path: path, Err: fmt.Errorf("holds a %q key, want %s", short(kf.KEM), KEMName)}
	}
	k, err := KEMKeyFromSeed(kf.Seed)
	if err != nil {
		return nil, &identity.KeyFileError{Path: path, Err: fmt.Errorf("is corrupt: %v", err)}
	}
	return k, nil
}

// OpenKEMKey loads the KEM key of the data directory dir, making and saving one the
// first time.
func OpenKEMKey(dir string) (*KEMKey, error) {
	path := filepath.Join(dir, KEMKeyFile)
	k, err := LoadKEMKey(path)
	if !errors.Is(err, os.ErrNotExist) {
		return k, err
	}
	if k, err = GenerateKEMKey(); err != nil {
		return nil, err
	}
	if err := SaveKEMKey(path, k); err != nil {
		if errors.Is(err, os.ErrExist) { // another process made it first
			return LoadKEMKey(path)
		}
		return nil, err
	}
	return k, nil
}

// KEMStatement is a node's signed statement of its HPKE public key.
type KEMStatement struct {
	V         string              `json:"v"`
	Node      string              `json:"node"`
	KEM       string              `json:"kem"`        // KEMName
	PublicKey []byte              `json:"public_key"` // base64 of the serialized public key (1216 bytes)
	Time      string              `json:"time"`       // FormatTime; a later statement replaces an earlier one
	Sig       *identity.Signature `json:"sig,omitempty"`

	raw []byte
	pub hpke.PublicKey
}

func (*KEMStatement) format() format {
	return format{"KEM statement", KEMVersion, KEMDomain, MaxKEMSize, "MaxKEMSize"}
}
func (s *KEMStatement) sigField() **identity.Signature { return &s.Sig }
func (s *KEMStatement) signer() string                 { return s.Node }
func (s *KEMStatement) setRaw(b []byte)                { s.raw = b }

// Bytes is the statement's canonical encoding, sig included.
func (s *KEMStatement) Bytes() []byte { return s.raw }

// Encode is the canonical encoding of the statement's members as they are now.
func (s *KEMStatement) Encode() ([]byte, error) { return encode(s, s.format()) }

// Verify checks that the statement's node signed it.
func (s *KEMStatement) Verify(keys Keys) error { return verify(s, keys) }

// Public is the stated key.
func (s *KEMStatement) Public() hpke.PublicKey { return s.pub }

// SignKEM makes node's statement of pub, signed with key (the node's).
func SignKEM(key *identity.PrivateKey, node string, pub hpke.PublicKey, now time.Time) ([]byte, error) {
	s := KEMStatement{V: KEMVersion, Node: node, KEM: KEMName, PublicKey: pub.Bytes(), Time: FormatTime(now)}
	return sign(key, &s)
}

// ParseKEM decodes a KEM statement strictly and checks that its key is a valid
// MLKEM768-X25519 public key. Verify checks the signature.
func ParseKEM(b []byte) (*KEMStatement, error) { return parse[KEMStatement](b) }

func (s *KEMStatement) validate() error {
	if s.V != KEMVersion {
		return fmt.Errorf("KEM statement v is %q, want %q", short(s.V), KEMVersion)
	}
	if err := checkNode("KEM statement node", s.Node); err != nil {
		return err
	}
	if s.KEM != KEMName {
		return fmt.Errorf("KEM statement from %s: kem %q is not %s", s.Node, short(s.KEM), KEMName)
	}
	kem, _, _ := kemSuite()
	pub, err := kem.NewPublicKey(s.PublicKey)
	if err != nil {
		return fmt.Errorf("KEM statement from %s: public_key: %v", s.Node, err)
	}
	s.pub = pub
	_, err = parseTime("KEM statement from "+s.Node+": time", s.Time)
	return err
}

// KEMKeys finds the HPKE public keys of the institution's nodes, from their verified
// KEM statements. It must be safe for concurrent use.
type KEMKeys interface {
	NodeKEM(nodeID string) (hpke.PublicKey, bool)
}

// KEMMap is KEMKeys over a fixed map, for tests and offline tools.
type KEMMap map[string]hpke.PublicKey

// NodeKEM returns the key of nodeID.
func (m KEMMap) NodeKEM(nodeID string) (hpke.PublicKey, bool) {
	k, ok := m[nodeID]
	return k, ok
}
