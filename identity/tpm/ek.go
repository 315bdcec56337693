package tpm

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
)

// SPEC: https://trustedcomputinggroup.org/resource/http-trustedcomputinggroup-org-wp-content-uploads-tcg-ek-credential-profile-v-2-5-r2_published-pdf/
// (TCG EK Credential Profile, templates L-1 and L-2 and their NV indices) and the TCG
// TPM v2.0 Provisioning Guidance (persistent handles 0x81010001 and 0x81010002).

// ekKind is one of the endorsement keys sios uses: its standard template, the NV index
// of its certificate and the persistent handle provisioning tools leave it at.
type ekKind struct {
	name       string
	template   tpm2.TPMTPublic
	certIndex  tpm2.TPMHandle
	persistent tpm2.TPMHandle
}

// ekKinds lists the EKs in order of preference: RSA-2048 (template L-1), which every
// TPM 2.0 ships with a certificate for, then ECC NIST P-256 (template L-2).
func ekKinds() []ekKind {
	return []ekKind{
		{name: "RSA-2048", template: tpm2.RSAEKTemplate, certIndex: 0x01c00002, persistent: 0x81010001},
		{name: "ECC NIST P-256", template: tpm2.ECCEKTemplate, certIndex: 0x01c0000a, persistent: 0x81010002},
	}
}

// ekKindOf returns the kind whose template made pub.
func ekKindOf(pub tpm2.TPMTPublic) (ekKind, bool) {
	for _, k := range ekKinds() {
		if sameTemplate(pub, k.template) {
			return k, true
		}
	}
	return ekKind{}, false
}

// ekPublicKey checks that pub is a standard EK and returns its key.
func ekPublicKey(pub tpm2.TPMTPublic) (crypto.PublicKey, error) {
	k, ok := ekKindOf(pub)
	if !ok {
		return nil, errors.New("the endorsement key is not made from a standard template (TCG EK Credential Profile L-1, RSA-2048, or L-2, ECC NIST P-256)")
	}
	if k.template.Type == tpm2.TPMAlgRSA {
		return rsaKey(pub)
	}
	return eccKey(pub)
}

// EKSHA256 is how sios names an endorsement key: the SHA-256, in lowercase hex, of its
// public key in PKIX (SubjectPublicKeyInfo) DER form, as SPIRE's TPM attestors do.
// Operators compute it from an EK certificate with
//
//	openssl x509 -in ek.pem -pubkey -noout | openssl pkey -pubin -outform DER | sha256sum
func EKSHA256(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("endorsement key: %v", err)
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:]), nil
}

// endorsementKey is the TPM's EK, loaded, with its certificate when the TPM holds one.
type endorsementKey struct {
	object
	cert []byte // DER; nil when there is none (or it could not be used: see certNote)
	// certNote says why a certificate found in NV was left out.
	certNote string
}

// errNoIndex marks an NV index that is not defined.
var errNoIndex = errors.New("NV index is not defined")

// findEK picks the EK to attest with among kinds (in order: the first with a
// certificate in NV, else the first without one) and loads it; the caller flushes it.
func findEK(tr transport.TPM, kinds []ekKind) (*endorsementKey, error) {
	for _, k := range kinds {
		der, err := readNV(tr, k.certIndex)
		if errors.Is(err, errNoIndex) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading the %s EK certificate from NV index %#x: %v", k.name, uint32(k.certIndex), err)
		}
		ek, err := loadEK(tr, k, nil)
		if err != nil {
			return nil, err
		}
		cert, err := parseEKCertificate(der)
		switch {
		case err != nil:
			ek.certNote = fmt.Sprintf("the %s EK certificate in NV index %#x was left out: %v", k.name, uint32(k.certIndex), err)
		case !publicKeyEqual(cert.PublicKey, ek.public):
			ek.certNote = fmt.Sprintf("the %s EK certificate in NV index %#x was left out: it certifies another key than the TPM's EK", k.name, uint32(k.certIndex))
		default:
			ek.cert = cert.Raw
		}
		return ek, nil
	}
	return loadEK(tr, kinds[0], nil)
}

// loadEK loads the EK of kind k: the provisioned one at its persistent handle when that
// is a standard EK (and equals want, when want is given), else one created from the
// template (the TPM derives the same key from its endorsement seed every time).
func loadEK(tr transport.TPM, k ekKind, want *tpm2.TPMTPublic) (*endorsementKey, error) {
	matches := func(pub *tpm2.TPMTPublic) bool {
		if want != nil {
			return bytes.Equal(tpm2.Marshal(pub), tpm2.Marshal(want))
		}
		return sameTemplate(*pub, k.template)
	}
	if rp, err := (tpm2.ReadPublic{ObjectHandle: k.persistent}).Execute(tr); err == nil {
		if pub, err := rp.OutPublic.Contents(); err == nil && matches(pub) {
			return &endorsementKey{object: object{handle: k.persistent, name: rp.Name, public: *pub}}, nil
		}
	}
	rsp, err := tpm2.CreatePrimary{PrimaryHandle: tpm2.TPMRHEndorsement, InPublic: tpm2.New2B(k.template)}.Execute(tr)
	if err != nil {
		return nil, fmt.Errorf("creating the %s endorsement key: %v", k.name, err)
	}
	pub, err := rsp.OutPublic.Contents()
	if err != nil {
		flush(tr, rsp.ObjectHandle)
		return nil, fmt.Errorf("%s endorsement key: %v", k.name, err)
	}
	if !matches(pub) {
		flush(tr, rsp.ObjectHandle)
		return nil, fmt.Errorf("this TPM's %s endorsement key is not the one in the node's evidence: the evidence was made with another TPM", k.name)
	}
	return &endorsementKey{object: object{handle: rsp.ObjectHandle, name: rsp.Name, public: *pub}}, nil
}

// publicKeyEqual reports whether a certificate's key is the TPM public area's key.
func publicKeyEqual(certKey any, pub tpm2.TPMTPublic) bool {
	k, err := ekPublicKey(pub)
	if err != nil {
		return false
	}
	e, ok := certKey.(interface{ Equal(crypto.PublicKey) bool })
	return ok && e.Equal(k)
}

// parseEKCertificate parses a DER EK certificate, which TPMs often store padded to the
// size of its NV index: whatever follows the certificate's ASN.1 SEQUENCE is dropped.
func parseEKCertificate(b []byte) (*x509.Certificate, error) {
	var raw asn1.RawValue
	rest, err := asn1.Unmarshal(b, &raw)
	if err != nil {
		return nil, fmt.Errorf("not a DER certificate: %v", err)
	}
	for _, c := range rest {
		if c != 0 && c != 0xff {
			return nil, errors.New("bytes other than padding follow the certificate")
		}
	}
	cert, err := x509.ParseCertificate(b[:len(b)-len(rest)])
	if err != nil {
		return nil, err
	}
	return cert, nil
}

// readNV reads a whole NV index with its own (empty) authorisation, as EK certificate
// indices allow.
func readNV(tr transport.TPM, index tpm2.TPMHandle) ([]byte, error) {
	prsp, err := tpm2.NVReadPublic{NVIndex: index}.Execute(tr)
	if err != nil {
		if errors.Is(err, tpm2.TPMRCHandle) {
			return nil, errNoIndex
		}
		return nil, err
	}
	pub, err := prsp.NVPublic.Contents()
	if err != nil {
		return nil, err
	}
	size := int(pub.DataSize)
	if size > MaxNVRead {
		return nil, fmt.Errorf("NV index holds %d bytes, more than %d (MaxNVRead)", size, MaxNVRead)
	}
	// 512 bytes per read fits every TPM's TPM_PT_NV_BUFFER_MAX.
	const chunk = 512
	out := make([]byte, 0, size)
	for off := 0; off < size; off += chunk {
		n := min(chunk, size-off)
		rsp, err := tpm2.NVRead{
			AuthHandle: tpm2.AuthHandle{Handle: index, Name: prsp.NVName, Auth: tpm2.PasswordAuth(nil)},
			NVIndex:    tpm2.NamedHandle{Handle: index, Name: prsp.NVName},
			Size:       uint16(n),
			Offset:     uint16(off),
		}.Execute(tr)
		if err != nil {
			return nil, err
		}
		if len(rsp.Data.Buffer) != n {
			return nil, fmt.Errorf("NV read at offset %d returned %d bytes, want %d", off, len(rsp.Data.Buffer), n)
		}
		out = append(out, rsp.Data.Buffer...)
	}
	return out, nil
}

// ekPolicySession authorises the EK for TPM2_ActivateCredential: the standard EK
// templates' policy is PolicySecret(TPM_RH_ENDORSEMENT), with the endorsement
// hierarchy's (empty) auth.
func ekPolicySession() tpm2.Session {
	return tpm2.Policy(tpm2.TPMAlgSHA256, 16, func(tr transport.TPM, h tpm2.TPMISHPolicy, nonceTPM tpm2.TPM2BNonce) error {
		_, err := tpm2.PolicySecret{
			AuthHandle:    tpm2.TPMRHEndorsement,
			PolicySession: h,
			NonceTPM:      nonceTPM,
		}.Execute(tr)
		return err
	})
}
