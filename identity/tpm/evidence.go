package tpm

import (
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/go-tpm/tpm2"

	"github.com/sios-project/sios/identity"
)

// Versions and domains of the attestation formats (docs/attestation.md). A published
// version never changes meaning.
const (
	EvidenceVersion = "sios-tpm-evidence/1"
	BindingVersion  = "sios-tpm-binding/1"
	// BindingDomain is the identity.Message domain of what the AK signs: the AK signs
	// SHA-256(BindingDomain || 0x0A || canonical binding).
	BindingDomain = "sios-tpm-binding/1"
)

// Binding is the statement the AK signs: this node, with these keys, is bound to the
// TPM with this EK, through this AK.
type Binding struct {
	V      string `json:"v"`
	NodeID string `json:"node_id"`
	identity.PublicKeyJSON
	EKSHA256 string `json:"ek_sha256"` // EKSHA256 of the EK
	AKName   string `json:"ak_name"`   // TPM Name of the AK, hex
}

// Evidence is a node's attestation evidence: published in its identity federation
// record (attestation kind "tpm") and checked by Verify.
type Evidence struct {
	V string `json:"v"`
	// EKPublic is the endorsement key's public area (TPMT_PUBLIC).
	EKPublic []byte `json:"ek_public"`
	// EKCertificate is the EK certificate (DER) the TPM holds in NV, absent when it
	// holds none.
	EKCertificate []byte `json:"ek_certificate,omitempty"`
	// AKPublic is the attestation key's public area (TPMT_PUBLIC).
	AKPublic []byte  `json:"ak_public"`
	Binding  Binding `json:"binding"`
	// BindingSignature is the AK's TPMT_SIGNATURE over the binding (see BindingDomain),
	// made with TPM2_Sign and a TPM2_SequenceComplete ticket.
	BindingSignature []byte `json:"binding_signature"`
}

// evidenceParts are the evidence's members decoded and checked in form.
type evidenceParts struct {
	ek     tpm2.TPMTPublic
	ekKey  any
	cert   *x509.Certificate
	ak     tpm2.TPMTPublic
	akKey  *ecdsa.PublicKey
	akName []byte
	keys   identity.PublicKey
	sig    tpm2.TPMTSignature
}

// Marshal returns the canonical encoding of the evidence.
func (ev *Evidence) Marshal() ([]byte, error) {
	return marshalCanonical("evidence", ev, MaxEvidenceSize, "MaxEvidenceSize", func() error { _, err := ev.parts(); return err })
}

// ParseEvidence decodes evidence, requiring canonical JSON with exactly the members of
// EvidenceVersion, each of the right form. It checks no signature: Verify does.
func ParseEvidence(b []byte) (*Evidence, error) {
	var ev Evidence
	if err := parseCanonical("evidence", b, MaxEvidenceSize, "MaxEvidenceSize", &ev, func() error { _, err := ev.parts(); return err }); err != nil {
		return nil, err
	}
	return &ev, nil
}

// parts checks every member's form and decodes it.
func (ev *Evidence) parts() (*evidenceParts, error) {
	var p evidenceParts
	if ev.V != EvidenceVersion {
		return nil, fmt.Errorf("evidence v is %q, want %q", short(ev.V), EvidenceVersion)
	}
	ek, err := parsePublic(ev.EKPublic)
	if err != nil {
		return nil, fmt.Errorf("evidence ek_public: %v", err)
	}
	if p.ekKey, err = ekPublicKey(*ek); err != nil {
		return nil, fmt.Errorf("evidence ek_public: %v", err)
	}
	p.ek = *ek
	if len(ev.EKCertificate) > 0 {
		if len(ev.EKCertificate) > MaxEKCertificate {
			return nil, fmt.Errorf("evidence ek_certificate is %d bytes, more than %d (MaxEKCertificate)", len(ev.EKCertificate), MaxEKCertificate)
		}
		if p.cert, err = x509.ParseCertificate(ev.EKCertificate); err != nil {
			return nil, fmt.Errorf("evidence ek_certificate: %v", err)
		}
	}
	ak, err := parsePublic(ev.AKPublic)
	if err != nil {
		return nil, fmt.Errorf("evidence ak_public: %v", err)
	}
	if p.akKey, err = akPublicKey(*ak); err != nil {
		return nil, fmt.Errorf("evidence ak_public: %v", err)
	}
	p.ak = *ak
	if p.akName, err = objectName(ak); err != nil {
		return nil, fmt.Errorf("evidence ak_public: %v", err)
	}
	b := ev.Binding
	if b.V != BindingVersion {
		return nil, fmt.Errorf("evidence binding v is %q, want %q", short(b.V), BindingVersion)
	}
	if !validNodeID(b.NodeID) {
		return nil, fmt.Errorf("evidence binding node_id %q is not a node id", short(b.NodeID))
	}
	if p.keys, err = b.PublicKeyJSON.Parse(); err != nil {
		return nil, fmt.Errorf("evidence binding: %v", err)
	}
	if !ValidEKSHA256(b.EKSHA256) {
		return nil, errors.New("evidence binding ek_sha256 is not 64 lowercase hex digits")
	}
	if !isHexName(b.AKName) {
		return nil, errors.New("evidence binding ak_name is not a SHA-256 TPM Name in lowercase hex")
	}
	sig, err := parseSignature(ev.BindingSignature)
	if err != nil {
		return nil, fmt.Errorf("evidence binding_signature: %v", err)
	}
	p.sig = *sig
	return &p, nil
}

// bindingMessage is what the AK signs (through SHA-256).
func bindingMessage(b *Binding) ([]byte, error) {
	body, err := canonical(b)
	if err != nil {
		return nil, err
	}
	return identity.Message(BindingDomain, body), nil
}

// Policy says which endorsement keys a verifier accepts: an EK whose EKSHA256 is
// pinned, or whose certificate (carried in the evidence) chains to one of CAs. Every
// certificate in CAs is a trust anchor, so an operator may pin a manufacturer's
// intermediate CA as well as its root.
type Policy struct {
	EKSHA256 []string
	CAs      *x509.CertPool
	// Time is when EK certificates must be valid; zero means now.
	Time time.Time
}

// Verified is evidence that passed Verify: what a verifier needs to challenge the node
// (Challenge) and what it may record.
type Verified struct {
	NodeID   string
	EKSHA256 string
	// EKCertificate is the EK certificate when the evidence carries one.
	EKCertificate *x509.Certificate
	// Pinned reports whether the EK was accepted by its hash (else by its certificate).
	Pinned bool

	ek     tpm2.TPMTPublic
	ak     *ecdsa.PublicKey
	akName []byte
}

// Verify checks evidence for the node nodeID with keys: the AK is a sios AK and signed
// the binding statement (ErrBindingSignature), the statement names this node, these
// keys, this EK and this AK (ErrBindingMismatch), the EK certificate, if any,
// certifies the EK (ErrEKCertificate), and policy accepts the EK (ErrUnknownEK).
//
// Verify alone does not show that the AK lives in the TPM that holds the EK, nor
// that the TPM is present now: only a Challenge answered and checked does. A node is
// TPM-attested when Pending.Check has accepted its answer.
func Verify(ev *Evidence, nodeID string, keys identity.PublicKey, policy Policy) (*Verified, error) {
	p, err := ev.parts()
	if err != nil {
		return nil, err
	}
	msg, err := bindingMessage(&ev.Binding)
	if err != nil {
		return nil, err
	}
	if !verifyECDSA(p.akKey, p.sig, msg) {
		return nil, fmt.Errorf("node %s: %w", short(nodeID), ErrBindingSignature)
	}
	b := ev.Binding
	switch {
	case b.NodeID != nodeID:
		return nil, fmt.Errorf("%w: it binds node %s, not %s", ErrBindingMismatch, b.NodeID, short(nodeID))
	case !p.keys.Equal(keys):
		return nil, fmt.Errorf("%w: it binds other public keys than node %s's", ErrBindingMismatch, nodeID)
	case keys.ID(identity.NodePrefix) != nodeID:
		return nil, fmt.Errorf("%w: node id %s is not the id of its keys", ErrBindingMismatch, nodeID)
	case b.AKName != hex.EncodeToString(p.akName):
		return nil, fmt.Errorf("%w: ak_name is not the name of the evidence's AK", ErrBindingMismatch)
	}
	ekHash, err := EKSHA256(p.ekKey)
	if err != nil {
		return nil, err
	}
	if b.EKSHA256 != ekHash {
		return nil, fmt.Errorf("%w: ek_sha256 %s is not the evidence's EK (%s)", ErrBindingMismatch, b.EKSHA256, ekHash)
	}
	if p.cert != nil && !publicKeyEqual(p.cert.PublicKey, p.ek) {
		return nil, fmt.Errorf("node %s: %w (the certificate's key is another)", nodeID, ErrEKCertificate)
	}
	v := &Verified{NodeID: nodeID, EKSHA256: ekHash, EKCertificate: p.cert, ek: p.ek, ak: p.akKey, akName: p.akName}
	if slices.Contains(policy.EKSHA256, ekHash) {
		v.Pinned = true
		return v, nil
	}
	if p.cert == nil {
		return nil, fmt.Errorf("node %s: %w: EK %s is not pinned, and the evidence carries no EK certificate", nodeID, ErrUnknownEK, ekHash)
	}
	if policy.CAs == nil {
		return nil, fmt.Errorf("node %s: %w: EK %s is not pinned, and no EK CA is pinned", nodeID, ErrUnknownEK, ekHash)
	}
	if err := verifyEKChain(p.cert, policy); err != nil {
		return nil, fmt.Errorf("node %s: %w: EK %s is not pinned, and its certificate (issuer %q) does not chain to a pinned EK CA: %v",
			nodeID, ErrUnknownEK, ekHash, short(p.cert.Issuer.String()), err)
	}
	return v, nil
}

// TCG EK certificates mark extensions critical that Go's x509 does not process: the
// subject alternative name holding only a directoryName (TPM manufacturer, model,
// version) and the subject directory attributes (TPM specification). Their content
// is informational; the chain and the key are what is checked.
var (
	oidSubjectAltName       = asn1.ObjectIdentifier{2, 5, 29, 17}
	oidSubjectDirectoryAttr = asn1.ObjectIdentifier{2, 5, 29, 9}
)

func verifyEKChain(cert *x509.Certificate, policy Policy) error {
	c := *cert
	c.UnhandledCriticalExtensions = slices.DeleteFunc(slices.Clone(c.UnhandledCriticalExtensions), func(oid asn1.ObjectIdentifier) bool {
		return oid.Equal(oidSubjectAltName) || oid.Equal(oidSubjectDirectoryAttr)
	})
	_, err := c.Verify(x509.VerifyOptions{
		Roots:       policy.CAs,
		CurrentTime: policy.Time,
		KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	return err
}

// ParseEKCAs reads EK CA certificates (PEM, one or more; or one DER certificate) into
// a pool for Policy.CAs. Each must be a CA certificate.
func ParseEKCAs(data []byte) (*x509.CertPool, []*x509.Certificate, error) {
	var certs []*x509.Certificate
	rest := data
	for {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, nil, fmt.Errorf("EK CA certificate %d: %v", len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		c, err := x509.ParseCertificate(data)
		if err != nil {
			return nil, nil, errors.New("no certificate found: want PEM CERTIFICATE blocks or one DER certificate")
		}
		certs = append(certs, c)
	}
	pool := x509.NewCertPool()
	for i, c := range certs {
		if !c.IsCA {
			return nil, nil, fmt.Errorf("certificate %d (%q) is not a CA certificate", i+1, short(c.Subject.String()))
		}
		pool.AddCert(c)
	}
	return pool, certs, nil
}

// VerifyBinding parses evidence and checks that it binds nodeID and keys to the EK it
// names — Verify with that EK accepted — for a verifier with no EK policy of its own
// (an evidence bundle, a trace, the node's own 'sios id'): it reports which TPM the
// node claims, and whether that EK is one to trust is the verifier's call, as the
// institution root is.
func VerifyBinding(evidence []byte, nodeID string, keys identity.PublicKey) (*Verified, error) {
	ev, err := ParseEvidence(evidence)
	if err != nil {
		return nil, err
	}
	return Verify(ev, nodeID, keys, Policy{EKSHA256: []string{ev.Binding.EKSHA256}})
}
