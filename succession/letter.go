package succession

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hpke"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cloudflare/circl/group"
	"github.com/cloudflare/circl/secretsharing"
	"github.com/sios-project/sios/identity"
)

// The sealed handover letter (docs/succession.md section 8).
//
// The holder's node encrypts the letter with AES-256-GCM under a key derived from a
// fresh random scalar s of ristretto255; splits s k-of-n among the charter's observers
// with Shamir's scheme (circl secretsharing, threshold k-1 so that k shares recover
// it); seals share i to observer i's HPKE key; and signs the whole, with a SHA-256
// commitment to each share, as role-letter/1. No single node can read it: each observer
// can open only its own share.
//
// Once a certificate took effect and a successor accepted through their node, each
// observer opens its share, checks it against its commitment and seals it again, to
// that node's HPKE key, in a role-share/1 it signs. Only that node can open the
// released shares, and with k of them it recovers s and opens the letter.
//
// Feldman commitments (circl secretsharing's CommitSecret) are deliberately not used:
// they publish g^s, from which anyone able to solve discrete logarithms in ristretto255
// (a quantum computer) recovers s and reads the letter without any share, undoing the
// post-quantum KEM. The SHA-256 commitments in the signed letter give what
// verifiability the successor needs (a released share is the one the holder's node
// dealt) without revealing anything about s.
const (
	LetterVersion    = "role-letter/1"
	LetterDomain     = "role-letter/1 letter" // identity.PrivateKey.Sign domain of a letter
	LetterHashDomain = "role-letter/1 hash"   // prefix (followed by a newline) of a letter hash
	ShareVersion     = "role-share/1"
	ShareDomain      = "role-share/1 share" // identity.PrivateKey.Sign domain of a released share

	// Domains of the letter's keys, commitments and seals; each is used with
	// identity.Message (domain, newline, body).
	LetterKeyInfo       = "role-letter/1 key"        // HKDF-SHA256 info: the letter key from s
	LetterAADDomain     = "role-letter/1 aead"       // AES-256-GCM additional data
	LetterCommitDomain  = "role-letter/1 commitment" // SHA-256 commitment to a share
	LetterShareInfo     = "role-letter/1 share"      // HPKE info of a share sealed to its observer
	ReleasedShareInfo   = "role-share/1 release"     // HPKE info of a share sealed to the successor's node
	letterIDSize        = 16
	letterNonceSize     = 12
	shareSize           = 64                    // ID and value, 32 bytes each (ristretto255 scalars)
	sealedShareSize     = 1120 + shareSize + 16 // X-Wing encapsulation, share, AES-256-GCM tag
	letterTagSize       = 16
	ristrettoScalarSize = 32
)

// Letter is a sealed handover letter.
type Letter struct {
	V          string              `json:"v"`
	ID         string              `json:"id"` // 32 lowercase hex digits, random
	Tenant     string              `json:"tenant"`
	Role       string              `json:"role"`
	Charter    string              `json:"charter"` // hash of the charter whose observers hold the shares
	Holder     string              `json:"holder"`  // the charter's holder, who deposited it
	Node       string              `json:"node"`    // the node the holder deposited through, which signs
	Time       string              `json:"time"`
	K          int                 `json:"k"`          // shares needed: the charter's k
	Nonce      []byte              `json:"nonce"`      // AES-256-GCM nonce, 12 bytes
	Ciphertext []byte              `json:"ciphertext"` // AES-256-GCM of the letter, tag included
	Shares     []LetterShare       `json:"shares"`     // one per observer, in the charter's order
	Sig        *identity.Signature `json:"sig,omitempty"`

	raw  []byte
	hash string
}

// LetterShare is one observer's sealed share.
type LetterShare struct {
	Observer   string `json:"observer"`   // node id
	Commitment string `json:"commitment"` // SHA-256 commitment to the share, lowercase hex
	Sealed     []byte `json:"sealed"`     // HPKE seal of the 64-byte share to the observer
}

// ReleasedShare is an observer's share sealed again, after a handover, to the node of
// the successor who accepted.
type ReleasedShare struct {
	V           string              `json:"v"`
	Letter      string              `json:"letter"` // LetterHash of the letter
	Tenant      string              `json:"tenant"`
	Role        string              `json:"role"`
	Charter     string              `json:"charter"`
	Certificate string              `json:"certificate"` // hash of the certificate that justified the release
	Successor   string              `json:"successor"`   // principal who accepted
	Node        string              `json:"node"`        // the observer, who signs
	To          string              `json:"to"`          // the successor's node, sealed to
	Sealed      []byte              `json:"sealed"`
	Time        string              `json:"time"`
	Sig         *identity.Signature `json:"sig,omitempty"`

	raw []byte
}

func (*Letter) format() format {
	return format{"letter", LetterVersion, LetterDomain, MaxLetterSize, "MaxLetterSize"}
}
func (l *Letter) sigField() **identity.Signature { return &l.Sig }
func (l *Letter) signer() string                 { return l.Node }
func (l *Letter) setRaw(b []byte)                { l.raw, l.hash = b, hashOf(LetterHashDomain, b) }

func (*ReleasedShare) format() format {
	return format{"released share", ShareVersion, ShareDomain, MaxShareSize, "MaxShareSize"}
}
func (s *ReleasedShare) sigField() **identity.Signature { return &s.Sig }
func (s *ReleasedShare) signer() string                 { return s.Node }
func (s *ReleasedShare) setRaw(b []byte)                { s.raw = b }

// Bytes is the letter's canonical encoding, sig included.
func (l *Letter) Bytes() []byte { return l.raw }

// Hash names the letter: SHA-256(LetterHashDomain || 0x0A || Bytes()) in lowercase hex.
func (l *Letter) Hash() string { return l.hash }

// Encode is the canonical encoding of the letter's members as they are now.
func (l *Letter) Encode() ([]byte, error) { return encode(l, l.format()) }

// Bytes is the released share's canonical encoding, sig included.
func (s *ReleasedShare) Bytes() []byte { return s.raw }

// Encode is the canonical encoding of the released share's members as they are now.
func (s *ReleasedShare) Encode() ([]byte, error) { return encode(s, s.format()) }

// Verify checks that the observer named in the released share signed it.
func (s *ReleasedShare) Verify(keys Keys) error { return verify(s, keys) }

// ParseLetter decodes a letter strictly. Verify checks it against its charter.
func ParseLetter(b []byte) (*Letter, error) { return parse[Letter](b) }

// ParseShare decodes a released share strictly. Letter.Open verifies it.
func ParseShare(b []byte) (*ReleasedShare, error) { return parse[ReleasedShare](b) }

// SealLetter seals plaintext as the letter of holder for the role of charter c, with
// one share for each observer (kems must know every observer's HPKE key), signed by
// signer as node (the node the holder acts through). Only the charter's holder may
// deposit a letter; a new charter needs a new letter.
func SealLetter(signer *identity.PrivateKey, node string, c *Charter, holder string, plaintext []byte, kems KEMKeys, now time.Time) ([]byte, error) {
	if holder != c.Holder {
		return nil, fmt.Errorf("letter for role %s/%s: only the holder %q may deposit one, not %q", c.Tenant, c.Name, c.Holder, holder)
	}
	if len(plaintext) == 0 || len(plaintext) > MaxLetterPlaintext {
		return nil, fmt.Errorf("letter is %d bytes; it must be 1 to %d (MaxLetterPlaintext)", len(plaintext), MaxLetterPlaintext)
	}
	pubs := make([]hpke.PublicKey, len(c.Observers))
	for i, o := range c.Observers {
		pub, ok := kems.NodeKEM(o)
		if !ok {
			return nil, fmt.Errorf("letter for role %s/%s: no KEM key is known for observer %s (it must publish a %s statement)", c.Tenant, c.Name, o, KEMVersion)
		}
		pubs[i] = pub
	}
	var id [letterIDSize]byte
	rand.Read(id[:]) // never fails (crypto/rand, Go 1.24 and later)
	l := Letter{V: LetterVersion, ID: hex.EncodeToString(id[:]), Tenant: c.Tenant, Role: c.Name, Charter: c.Hash(),
		Holder: holder, Node: node, Time: FormatTime(now), K: c.K, Nonce: make([]byte, letterNonceSize)}
	rand.Read(l.Nonce)

	g := group.Ristretto255
	secret := g.RandomScalar(rand.Reader)
	aead, err := l.aead(secret)
	if err != nil {
		return nil, err
	}
	l.Ciphertext = aead.Seal(nil, l.Nonce, plaintext, l.aad())

	_, kdf, ae := kemSuite()
	shares := secretsharing.New(rand.Reader, uint(c.K-1), secret).Share(uint(len(c.Observers)))
	for i, o := range c.Observers {
		sb, err := shareBytes(shares[i])
		if err != nil {
			return nil, err
		}
		sealed, err := hpke.Seal(pubs[i], kdf, ae, identity.Message(LetterShareInfo, []byte(l.ID+"\n"+o)), sb)
		if err != nil {
			return nil, fmt.Errorf("letter: sealing the share of observer %s: %v", o, err)
		}
		l.Shares = append(l.Shares, LetterShare{Observer: o, Commitment: l.commitment(sb), Sealed: sealed})
	}
	return sign(signer, &l)
}

// aead is AES-256-GCM under the letter key derived from s.
func (l *Letter) aead(s group.Scalar) (cipher.AEAD, error) {
	sb, err := s.MarshalBinary()
	if err != nil {
		return nil, err
	}
	key, err := hkdf.Key(sha256.New, sb, nil, string(identity.Message(LetterKeyInfo, []byte(l.ID))), 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

func (l *Letter) aad() []byte {
	return identity.Message(LetterAADDomain, []byte(l.ID+"\n"+l.Tenant+"\n"+l.Role+"\n"+l.Charter+"\n"+l.Holder))
}

// commitment is SHA-256 of the share bound to this letter.
func (l *Letter) commitment(share []byte) string {
	return hashOf(LetterCommitDomain, append([]byte(l.ID+"\n"), share...))
}

func shareBytes(s secretsharing.Share) ([]byte, error) {
	id, err := s.ID.MarshalBinary()
	if err != nil {
		return nil, err
	}
	v, err := s.Value.MarshalBinary()
	if err != nil {
		return nil, err
	}
	return append(id, v...), nil
}

// parseShare decodes the 64 bytes of share index i (0-based; its ID is i+1).
func parseShare(b []byte, i int) (secretsharing.Share, error) {
	g := group.Ristretto255
	if len(b) != shareSize {
		return secretsharing.Share{}, fmt.Errorf("share is %d bytes, want %d", len(b), shareSize)
	}
	s := secretsharing.Share{ID: g.NewScalar(), Value: g.NewScalar()}
	if err := s.ID.UnmarshalBinary(b[:ristrettoScalarSize]); err != nil {
		return s, fmt.Errorf("share id: %v", err)
	}
	if err := s.Value.UnmarshalBinary(b[ristrettoScalarSize:]); err != nil {
		return s, fmt.Errorf("share value: %v", err)
	}
	if !s.ID.IsEqual(g.NewScalar().SetUint64(uint64(i + 1))) {
		return s, fmt.Errorf("share id is not %d", i+1)
	}
	return s, nil
}

func (l *Letter) validate() error {
	if l.V != LetterVersion {
		return fmt.Errorf("letter v is %q, want %q", short(l.V), LetterVersion)
	}
	if len(l.ID) != 2*letterIDSize || !isLowerHex(l.ID) {
		return fmt.Errorf("letter id %q is not 32 lowercase hex digits", short(l.ID))
	}
	where := "letter " + l.ID
	for _, f := range []struct{ name, v string }{{"tenant", l.Tenant}, {"role", l.Role}, {"holder", l.Holder}} {
		if err := checkID(where+": "+f.name, f.v); err != nil {
			return err
		}
	}
	if err := checkHash(where+": charter", l.Charter); err != nil {
		return err
	}
	if err := checkNode(where+": node", l.Node); err != nil {
		return err
	}
	if _, err := parseTime(where+": time", l.Time); err != nil {
		return err
	}
	if l.K < 2 || l.K > len(l.Shares) {
		return fmt.Errorf("%s: k is %d; it must be at least 2 and at most the number of shares (%d)", where, l.K, len(l.Shares))
	}
	if len(l.Nonce) != letterNonceSize {
		return fmt.Errorf("%s: nonce is %d bytes, want %d", where, len(l.Nonce), letterNonceSize)
	}
	if n := len(l.Ciphertext) - letterTagSize; n < 1 || n > MaxLetterPlaintext {
		return fmt.Errorf("%s: ciphertext holds %d bytes of letter; it must be 1 to %d (MaxLetterPlaintext)", where, n, MaxLetterPlaintext)
	}
	if len(l.Shares) < 2 || len(l.Shares) > MaxObservers {
		return fmt.Errorf("%s: %d shares; there must be 2 to %d (MaxObservers)", where, len(l.Shares), MaxObservers)
	}
	for i, s := range l.Shares {
		name := fmt.Sprintf("%s: shares[%d]", where, i)
		if err := checkNode(name+".observer", s.Observer); err != nil {
			return err
		}
		if i > 0 && l.Shares[i-1].Observer >= s.Observer {
			return fmt.Errorf("%s.observer %s is out of order or repeated (shares follow the charter's sorted observers)", name, s.Observer)
		}
		if err := checkHash(name+".commitment", s.Commitment); err != nil {
			return err
		}
		if len(s.Sealed) != sealedShareSize {
			return fmt.Errorf("%s.sealed is %d bytes, want %d", name, len(s.Sealed), sealedShareSize)
		}
	}
	return nil
}

func (s *ReleasedShare) validate() error {
	if s.V != ShareVersion {
		return fmt.Errorf("released share v is %q, want %q", short(s.V), ShareVersion)
	}
	if err := checkNode("released share node", s.Node); err != nil {
		return err
	}
	where := "released share from " + s.Node
	for _, f := range []struct{ name, v string }{{"letter", s.Letter}, {"charter", s.Charter}, {"certificate", s.Certificate}} {
		if err := checkHash(where+": "+f.name, f.v); err != nil {
			return err
		}
	}
	for _, f := range []struct{ name, v string }{{"tenant", s.Tenant}, {"role", s.Role}, {"successor", s.Successor}} {
		if err := checkID(where+": "+f.name, f.v); err != nil {
			return err
		}
	}
	if err := checkNode(where+": to", s.To); err != nil {
		return err
	}
	if len(s.Sealed) != sealedShareSize {
		return fmt.Errorf("%s: sealed is %d bytes, want %d", where, len(s.Sealed), sealedShareSize)
	}
	_, err := parseTime(where+": time", s.Time)
	return err
}

// Verify checks the letter against the charter in force: signed by its node (keys),
// for the charter's role and hash, deposited by its holder, with k equal to the
// charter's and exactly one share for each of the charter's observers, in order.
func (l *Letter) Verify(c *Charter, keys Keys) error {
	if err := verify(l, keys); err != nil {
		return err
	}
	if l.Charter != c.Hash() || l.Tenant != c.Tenant || l.Role != c.Name {
		return fmt.Errorf("letter %s is for charter %s of %s/%s, not the charter in force %s of %s/%s (a new charter needs a new letter)", l.ID, l.Charter, l.Tenant, l.Role, c.Hash(), c.Tenant, c.Name)
	}
	if l.Holder != c.Holder {
		return fmt.Errorf("letter %s was deposited by %q, not the charter's holder %q", l.ID, l.Holder, c.Holder)
	}
	if l.K != c.K {
		return fmt.Errorf("letter %s needs %d shares; the charter's k is %d", l.ID, l.K, c.K)
	}
	if len(l.Shares) != len(c.Observers) {
		return fmt.Errorf("letter %s has %d shares for the charter's %d observers", l.ID, len(l.Shares), len(c.Observers))
	}
	for i, s := range l.Shares {
		if s.Observer != c.Observers[i] {
			return fmt.Errorf("letter %s: share %d is for %s, not the charter's observer %s", l.ID, i, s.Observer, c.Observers[i])
		}
	}
	return nil
}

// index is the position of observer's share, or -1.
func (l *Letter) index(observer string) int {
	return slices.IndexFunc(l.Shares, func(s LetterShare) bool { return s.Observer == observer })
}

// openOwn opens the share sealed to observer node with its key and checks the
// commitment.
func (l *Letter) openOwn(own *KEMKey, node string) ([]byte, int, error) {
	i := l.index(node)
	if i < 0 {
		return nil, 0, fmt.Errorf("letter %s holds no share for node %s", l.ID, node)
	}
	_, kdf, ae := kemSuite()
	sb, err := hpke.Open(own.priv, kdf, ae, identity.Message(LetterShareInfo, []byte(l.ID+"\n"+node)), l.Shares[i].Sealed)
	if err != nil {
		return nil, 0, fmt.Errorf("letter %s: the share for %s does not open with this node's KEM key: %v", l.ID, node, err)
	}
	if l.commitment(sb) != l.Shares[i].Commitment {
		return nil, 0, fmt.Errorf("letter %s: the share for %s does not match its commitment", l.ID, node)
	}
	if _, err := parseShare(sb, i); err != nil {
		return nil, 0, fmt.Errorf("letter %s: the share for %s: %v", l.ID, node, err)
	}
	return sb, i, nil
}

// CheckShare is what an observer does on receiving a letter (after Verify): it opens
// its own share and checks it against the commitment, so that a letter it could not
// release later is known at once.
func (l *Letter) CheckShare(own *KEMKey, node string) error {
	_, _, err := l.openOwn(own, node)
	return err
}

// Release is what observer node does after a handover: given the role's state st
// (State, at now, for the letter's charter), in which a successor accepted through
// their node, it opens its own share with own, checks it and seals it to that node's
// HPKE key (kems, from the nodes' verified KEM statements), signed by signer.
func (l *Letter) Release(st RoleState, own *KEMKey, signer *identity.PrivateKey, node string, kems KEMKeys, now time.Time) ([]byte, error) {
	if st.Charter != l.Charter {
		return nil, fmt.Errorf("letter %s is for charter %s; the state given is of charter %s", l.ID, l.Charter, st.Charter)
	}
	if st.State != StateHandedOver || st.CertificateHash == "" {
		return nil, fmt.Errorf("letter %s: role %s/%s is %s: shares are released only after a handover", l.ID, l.Tenant, l.Role, st.State)
	}
	if st.Holder == "" || st.HolderNode == "" {
		return nil, fmt.Errorf("letter %s: no successor has accepted role %s/%s yet: shares are released only to the node of one who has", l.ID, l.Tenant, l.Role)
	}
	to, ok := kems.NodeKEM(st.HolderNode)
	if !ok {
		return nil, fmt.Errorf("letter %s: no KEM key is known for %s, the node %q accepted through (it must publish a %s statement)", l.ID, st.HolderNode, st.Holder, KEMVersion)
	}
	sb, _, err := l.openOwn(own, node)
	if err != nil {
		return nil, err
	}
	_, kdf, ae := kemSuite()
	sealed, err := hpke.Seal(to, kdf, ae, releaseInfo(l.Hash(), node, st.HolderNode), sb)
	if err != nil {
		return nil, fmt.Errorf("letter %s: sealing the share to %s: %v", l.ID, st.HolderNode, err)
	}
	r := ReleasedShare{V: ShareVersion, Letter: l.Hash(), Tenant: l.Tenant, Role: l.Role, Charter: l.Charter,
		Certificate: st.CertificateHash, Successor: st.Holder, Node: node, To: st.HolderNode, Sealed: sealed, Time: FormatTime(now)}
	return sign(signer, &r)
}

func releaseInfo(letter, observer, to string) []byte {
	return identity.Message(ReleasedShareInfo, []byte(letter+"\n"+observer+"\n"+to))
}

// Open is what the successor's node does with the released shares it received: each
// is parsed, checked to be for this letter and sealed to node, verified as signed by
// the observer it names (keys), opened with own and checked against the letter's
// commitment; with k valid shares from distinct observers it recovers the key and
// returns the letter. Verify the letter first. Shares that fail are named in the error
// when fewer than k remain.
func (l *Letter) Open(own *KEMKey, node string, released [][]byte, keys Keys) ([]byte, error) {
	_, kdf, ae := kemSuite()
	var shares []secretsharing.Share
	got := map[int]bool{}
	var problems []string
	for j, b := range released {
		r, err := ParseShare(b)
		if err != nil {
			problems = append(problems, fmt.Sprintf("released[%d]: %v", j, err))
			continue
		}
		i := l.index(r.Node)
		switch {
		case r.Letter != l.Hash():
			err = fmt.Errorf("is for letter %s, not %s", r.Letter, l.Hash())
		case r.To != node:
			err = fmt.Errorf("is sealed to %s, not this node %s", r.To, node)
		case i < 0:
			err = fmt.Errorf("is from %s, which holds no share of the letter", r.Node)
		case got[i]:
			continue
		default:
			err = r.Verify(keys)
		}
		if err != nil {
			problems = append(problems, fmt.Sprintf("released[%d] from %s: %v", j, short(r.Node), err))
			continue
		}
		sb, err := hpke.Open(own.priv, kdf, ae, releaseInfo(l.Hash(), r.Node, node), r.Sealed)
		if err != nil {
			problems = append(problems, fmt.Sprintf("released[%d] from %s: does not open with this node's KEM key: %v", j, r.Node, err))
			continue
		}
		if l.commitment(sb) != l.Shares[i].Commitment {
			problems = append(problems, fmt.Sprintf("released[%d] from %s: does not match its commitment in the letter", j, r.Node))
			continue
		}
		s, err := parseShare(sb, i)
		if err != nil {
			problems = append(problems, fmt.Sprintf("released[%d] from %s: %v", j, r.Node, err))
			continue
		}
		got[i] = true
		shares = append(shares, s)
	}
	if len(shares) < l.K {
		msg := fmt.Sprintf("letter %s: %d valid shares of the %d needed (k)", l.ID, len(shares), l.K)
		if len(problems) > 0 {
			msg += ": " + strings.Join(problems, "; ")
		}
		return nil, errors.New(msg)
	}
	secret, err := secretsharing.Recover(uint(l.K-1), shares[:l.K])
	if err != nil {
		return nil, fmt.Errorf("letter %s: %v", l.ID, err)
	}
	aead, err := l.aead(secret)
	if err != nil {
		return nil, err
	}
	plain, err := aead.Open(nil, l.Nonce, l.Ciphertext, l.aad())
	if err != nil {
		return nil, fmt.Errorf("letter %s does not decrypt with the recovered key: the letter or a share was altered", l.ID)
	}
	return plain, nil
}
