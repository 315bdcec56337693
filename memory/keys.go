package memory

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// Domain-separation labels. Only append: a label once used names a format on disk.
const (
	contentDomain  = "sios-memory/1"       // AAD of a memory's sealed text
	wrapDomain     = "sios-memory-key/1"   // AAD of a wrapped data key
	indexDomain    = "sios-memory-index/1" // derivation of a tenant's index key
	kekCheckDomain = "sios-memory-kek/1"   // check value proving the KEK matches the database
	auditDomain    = "sios-memory-audit/1" // derivation of a subject's audit key from its data key
	subjectDomain  = "sios-memory-subject/1"
)

const kekFile = "memory.kek"

// loadKEK reads the node's key-encryption key from path, or creates it (0600, 32 random
// bytes) if it does not exist and create is true.
func loadKEK(path string, create bool) ([]byte, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		if !create {
			return nil, fmt.Errorf("memory: key file %s is missing but the database holds memories sealed under it; restore the key file from backup", path)
		}
		key := make([]byte, 32)
		rand.Read(key)
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, fmt.Errorf("memory: create key file: %w", err)
		}
		if _, err := f.Write(key); err != nil {
			f.Close()
			return nil, fmt.Errorf("memory: write key file %s: %w", path, err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return nil, fmt.Errorf("memory: sync key file %s: %w", path, err)
		}
		if err := f.Close(); err != nil {
			return nil, fmt.Errorf("memory: close key file %s: %w", path, err)
		}
		return key, nil
	}
	if err != nil {
		return nil, fmt.Errorf("memory: key file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("memory: key file %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("memory: key file %s is accessible by group or others (mode %04o); run: chmod 600 %s", path, perm, path)
	}
	key, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("memory: read key file: %w", err)
	}
	if len(key) != 32 {
		return nil, fmt.Errorf("memory: key file %s holds %d bytes, want 32", path, len(key))
	}
	return key, nil
}

// kekCheck is stored in the database so that Open can tell a wrong key file from
// damaged data.
func kekCheck(kek []byte) []byte {
	m := hmac.New(sha256.New, kek)
	m.Write([]byte(kekCheckDomain))
	return m.Sum(nil)
}

// frame encodes a domain label and fields, each length-prefixed, so that no two
// different (tenant, subject, id) tuples give the same bytes.
func frame(domain string, fields ...string) []byte {
	n := 4 + len(domain)
	for _, f := range fields {
		n += 4 + len(f)
	}
	b := make([]byte, 0, n)
	b = binary.BigEndian.AppendUint32(b, uint32(len(domain)))
	b = append(b, domain...)
	for _, f := range fields {
		b = binary.BigEndian.AppendUint32(b, uint32(len(f)))
		b = append(b, f...)
	}
	return b
}

func newGCM(key []byte) cipher.AEAD {
	block, err := aes.NewCipher(key)
	if err != nil {
		panic(err) // keys are always 32 bytes
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic(err)
	}
	return aead
}

// seal encrypts plaintext under key with a random nonce; the result is nonce ‖ ciphertext ‖ tag.
func seal(aead cipher.AEAD, plaintext, ad []byte) []byte {
	out := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plaintext)+aead.Overhead())
	rand.Read(out)
	return aead.Seal(out, out, plaintext, ad)
}

func open(aead cipher.AEAD, sealed, ad []byte) ([]byte, error) {
	if len(sealed) < aead.NonceSize()+aead.Overhead() {
		return nil, errors.New("sealed value too short")
	}
	return aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], ad)
}

// newDataKey returns a fresh data key and its wrapped form for (tenant, subject).
func (s *Store) newDataKey(tenant, subject string) (key, wrapped []byte) {
	key = make([]byte, 32)
	rand.Read(key)
	return key, seal(s.kekAEAD, key, frame(wrapDomain, tenant, subject))
}

// subjectKeys are what a subject's data key gives: the AEAD its memories are sealed
// under and the key its audit references are made with. Forgetting the subject destroys
// the data key, and with it both.
type subjectKeys struct {
	aead  cipher.AEAD
	audit []byte
}

func keysOf(key []byte) subjectKeys {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(auditDomain))
	return subjectKeys{aead: newGCM(key), audit: m.Sum(nil)}
}

func (s *Store) unwrapDataKey(tenant, subject string, wrapped []byte) (subjectKeys, error) {
	key, err := open(s.kekAEAD, wrapped, frame(wrapDomain, tenant, subject))
	if err != nil {
		return subjectKeys{}, fmt.Errorf("memory: data key of tenant %q subject %q does not open under the key file: %w", tenant, subject, err)
	}
	defer clear(key)
	return keysOf(key), nil
}

// Ref is how audit records name a subject's memory: by a pseudonym and keyed digests
// made with the subject's audit key, so that once the subject is forgotten (its key
// destroyed) nothing in the log can be linked back to the subject or its texts. A
// subject the store holds no key for is named under its tenant's key instead.
type Ref struct {
	// Subject is the pseudonym: "subj_" and 26 base32 characters.
	Subject string
	// Text is the HMAC-SHA256 of a memory's text under the subject's audit key, in
	// lowercase hex (Add only).
	Text string
}

func pseudonym(key []byte, tenant, subject string) string {
	m := hmac.New(sha256.New, key)
	m.Write(frame(subjectDomain, tenant, subject))
	return "subj_" + idEncoding.EncodeToString(m.Sum(nil)[:16])
}

func keyedDigest(key []byte, text string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(text))
	return hex.EncodeToString(m.Sum(nil))
}

// indexKey derives the tenant's index key: HMAC-SHA256(KEK, label ‖ "\n" ‖ tenant).
func (s *Store) indexKey(tenant string) []byte {
	m := hmac.New(sha256.New, s.kek)
	m.Write([]byte(indexDomain + "\n" + tenant))
	return m.Sum(nil)
}
