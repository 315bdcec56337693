package tpm

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/big"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
)

// object is a key loaded in the TPM, with what commands that use it need.
type object struct {
	handle tpm2.TPMHandle
	name   tpm2.TPM2BName
	public tpm2.TPMTPublic
}

func (o *object) named() tpm2.NamedHandle { return tpm2.NamedHandle{Handle: o.handle, Name: o.name} }

// auth is the object's handle with an empty password, the auth value of every object
// sios makes (the TPM protects them by hierarchy and parent, not by a password).
func (o *object) auth() tpm2.AuthHandle {
	return tpm2.AuthHandle{Handle: o.handle, Name: o.name, Auth: tpm2.PasswordAuth(nil)}
}

// flush unloads a transient object; persistent handles stay.
func flush(tr transport.TPM, h tpm2.TPMHandle) {
	if tpm2.TPMHT(h>>24) == tpm2.TPMHTTransient {
		tpm2.FlushContext{FlushHandle: h}.Execute(tr) // a failed flush leaves an object the next Open flushes (simulators) or the resource manager does
	}
}

// srkTemplate is the TCG standard ECC P-256 storage root key template (TCG TPM v2.0
// Provisioning Guidance, "Storage Primary Key (SRK) Templates"): the TPM derives the
// same key from its owner-hierarchy seed every time, until the owner hierarchy is
// cleared.
func srkTemplate() tpm2.TPMTPublic { return tpm2.ECCSRKTemplate }

// createSRK creates the SRK and returns it loaded; the caller flushes it.
func createSRK(tr transport.TPM) (*object, error) {
	rsp, err := tpm2.CreatePrimary{PrimaryHandle: tpm2.TPMRHOwner, InPublic: tpm2.New2B(srkTemplate())}.Execute(tr)
	if err != nil {
		if errors.Is(err, tpm2.TPMRCBadAuth) || errors.Is(err, tpm2.TPMRCAuthFail) {
			return nil, fmt.Errorf("creating the storage root key: %v (the TPM's owner hierarchy has a password; sios needs it empty)", err)
		}
		return nil, fmt.Errorf("creating the storage root key: %v", err)
	}
	pub, err := rsp.OutPublic.Contents()
	if err != nil {
		flush(tr, rsp.ObjectHandle)
		return nil, fmt.Errorf("storage root key: %v", err)
	}
	return &object{handle: rsp.ObjectHandle, name: rsp.Name, public: *pub}, nil
}

// salted is an HMAC session salted with the SRK and encrypting the first parameter in
// dir: the sealed seeds cross the bus (or the simulator's socket) only encrypted, under
// a key an interposer without the SRK's private key cannot derive.
func salted(srk *object, dir tpm2.AuthOption) tpm2.Session {
	return tpm2.HMAC(tpm2.TPMAlgSHA256, 16, dir, tpm2.Salted(srk.handle, srk.public))
}

// akTemplate is the attestation key: an ECC P-256 restricted signing key (it signs
// only TPM-generated attestations and digests the TPM itself computed) that never
// leaves the TPM, signing ECDSA over SHA-256.
func akTemplate() tpm2.TPMTPublic {
	return tpm2.TPMTPublic{
		Type:    tpm2.TPMAlgECC,
		NameAlg: tpm2.TPMAlgSHA256,
		ObjectAttributes: tpm2.TPMAObject{
			FixedTPM:            true,
			FixedParent:         true,
			SensitiveDataOrigin: true,
			UserWithAuth:        true,
			NoDA:                true,
			Restricted:          true,
			SignEncrypt:         true,
		},
		Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgECC, &tpm2.TPMSECCParms{
			Symmetric: tpm2.TPMTSymDefObject{Algorithm: tpm2.TPMAlgNull},
			Scheme: tpm2.TPMTECCScheme{
				Scheme:  tpm2.TPMAlgECDSA,
				Details: tpm2.NewTPMUAsymScheme(tpm2.TPMAlgECDSA, &tpm2.TPMSSigSchemeECDSA{HashAlg: tpm2.TPMAlgSHA256}),
			},
			CurveID: tpm2.TPMECCNistP256,
			KDF:     tpm2.TPMTKDFScheme{Scheme: tpm2.TPMAlgNull},
		}),
		Unique: tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{
			X: tpm2.TPM2BECCParameter{Buffer: make([]byte, 32)},
			Y: tpm2.TPM2BECCParameter{Buffer: make([]byte, 32)},
		}),
	}
}

// akScheme is the AK's signing scheme, named explicitly in TPM2_Sign and TPM2_Quote.
func akScheme() tpm2.TPMTSigScheme {
	return tpm2.TPMTSigScheme{
		Scheme:  tpm2.TPMAlgECDSA,
		Details: tpm2.NewTPMUSigScheme(tpm2.TPMAlgECDSA, &tpm2.TPMSSchemeHash{HashAlg: tpm2.TPMAlgSHA256}),
	}
}

// sameTemplate reports whether pub was made from template: equal in everything but
// the unique field (the key itself).
func sameTemplate(pub, template tpm2.TPMTPublic) bool {
	if pub.Type != template.Type {
		return false // and Unique's union tag would not match Type: Marshal panics
	}
	pub.Unique = template.Unique
	return bytes.Equal(tpm2.Marshal(pub), tpm2.Marshal(template))
}

// akPublicKey checks that pub is a sios AK and returns its ECDSA key.
func akPublicKey(pub tpm2.TPMTPublic) (*ecdsa.PublicKey, error) {
	if !sameTemplate(pub, akTemplate()) {
		return nil, errors.New("the attestation key is not a sios AK (a fixed, restricted ECC P-256 signing key with ECDSA-SHA256)")
	}
	return eccKey(pub)
}

// eccKey returns the P-256 key of an ECC public area, checking the point is on the curve.
func eccKey(pub tpm2.TPMTPublic) (*ecdsa.PublicKey, error) {
	parms, err := pub.Parameters.ECCDetail()
	if err != nil {
		return nil, err
	}
	if parms.CurveID != tpm2.TPMECCNistP256 {
		return nil, fmt.Errorf("ECC curve %#x is not NIST P-256", uint16(parms.CurveID))
	}
	pt, err := pub.Unique.ECC()
	if err != nil {
		return nil, err
	}
	if len(pt.X.Buffer) != 32 || len(pt.Y.Buffer) != 32 {
		return nil, errors.New("ECC point coordinates are not 32 bytes each")
	}
	k := &ecdsa.PublicKey{Curve: elliptic.P256(), X: new(big.Int).SetBytes(pt.X.Buffer), Y: new(big.Int).SetBytes(pt.Y.Buffer)}
	if _, err := k.ECDH(); err != nil {
		return nil, fmt.Errorf("ECC point: %v", err)
	}
	return k, nil
}

// rsaKey returns the key of an RSA-2048 public area.
func rsaKey(pub tpm2.TPMTPublic) (*rsa.PublicKey, error) {
	parms, err := pub.Parameters.RSADetail()
	if err != nil {
		return nil, err
	}
	n, err := pub.Unique.RSA()
	if err != nil {
		return nil, err
	}
	if parms.KeyBits != 2048 || len(n.Buffer) != 256 || n.Buffer[0]&0x80 == 0 {
		return nil, errors.New("RSA modulus is not 2048 bits")
	}
	if parms.Exponent != 0 && parms.Exponent != 65537 {
		return nil, fmt.Errorf("RSA exponent %d is not 65537", parms.Exponent)
	}
	return &rsa.PublicKey{N: new(big.Int).SetBytes(n.Buffer), E: 65537}, nil
}

// verifyECDSA checks a TPMT_SIGNATURE made by the AK over SHA-256(msg).
func verifyECDSA(key *ecdsa.PublicKey, sig tpm2.TPMTSignature, msg []byte) bool {
	if sig.SigAlg != tpm2.TPMAlgECDSA {
		return false
	}
	e, err := sig.Signature.ECDSA()
	if err != nil || e.Hash != tpm2.TPMAlgSHA256 {
		return false
	}
	digest := sha256.Sum256(msg)
	r, s := new(big.Int).SetBytes(e.SignatureR.Buffer), new(big.Int).SetBytes(e.SignatureS.Buffer)
	return ecdsa.Verify(key, digest[:], r, s)
}

// createAK creates an attestation key under the SRK and loads it; the caller flushes it.
// It returns the key blobs to store (the private part is encrypted by the SRK).
func createAK(tr transport.TPM, srk *object) (ak *object, public, private []byte, err error) {
	crsp, err := tpm2.Create{ParentHandle: srk.auth(), InPublic: tpm2.New2B(akTemplate())}.Execute(tr)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("creating the attestation key: %v", err)
	}
	pub, err := crsp.OutPublic.Contents()
	if err != nil {
		return nil, nil, nil, fmt.Errorf("attestation key: %v", err)
	}
	ak, err = loadObject(tr, srk, tpm2.Marshal(pub), crsp.OutPrivate.Buffer)
	if err != nil {
		return nil, nil, nil, err
	}
	return ak, tpm2.Marshal(pub), crsp.OutPrivate.Buffer, nil
}

// loadObject loads a key blob (TPMT_PUBLIC, TPM2B_PRIVATE contents) under the SRK.
func loadObject(tr transport.TPM, srk *object, public, private []byte) (*object, error) {
	pub, err := parsePublic(public)
	if err != nil {
		return nil, err
	}
	rsp, err := tpm2.Load{
		ParentHandle: srk.auth(),
		InPrivate:    tpm2.TPM2BPrivate{Buffer: private},
		InPublic:     tpm2.New2B(*pub),
	}.Execute(tr)
	if err != nil {
		if errors.Is(err, tpm2.TPMRCIntegrity) {
			return nil, fmt.Errorf("%w: the TPM refuses the blob's integrity check (%v)", ErrOtherTPM, err)
		}
		return nil, fmt.Errorf("loading a key blob: %v", err)
	}
	return &object{handle: rsp.ObjectHandle, name: rsp.Name, public: *pub}, nil
}

// parsePublic decodes a TPMT_PUBLIC that must re-encode to exactly its input.
func parsePublic(b []byte) (*tpm2.TPMTPublic, error) {
	if len(b) > MaxTPMPublic {
		return nil, fmt.Errorf("public area is %d bytes, more than %d (MaxTPMPublic)", len(b), MaxTPMPublic)
	}
	pub, err := tpm2.Unmarshal[tpm2.TPMTPublic](b)
	if err != nil {
		return nil, fmt.Errorf("public area: %v", err)
	}
	if !bytes.Equal(tpm2.Marshal(pub), b) {
		return nil, errors.New("public area is not a single canonical TPMT_PUBLIC")
	}
	return pub, nil
}

// parseSignature decodes a TPMT_SIGNATURE that must re-encode to exactly its input.
func parseSignature(b []byte) (*tpm2.TPMTSignature, error) {
	if len(b) > MaxTPMSignature {
		return nil, fmt.Errorf("signature is %d bytes, more than %d (MaxTPMSignature)", len(b), MaxTPMSignature)
	}
	sig, err := tpm2.Unmarshal[tpm2.TPMTSignature](b)
	if err != nil {
		return nil, fmt.Errorf("signature: %v", err)
	}
	if !bytes.Equal(tpm2.Marshal(sig), b) {
		return nil, errors.New("signature is not a single canonical TPMT_SIGNATURE")
	}
	return sig, nil
}

// objectName is the TPM Name of a public area: nameAlg || H(TPMT_PUBLIC).
func objectName(pub *tpm2.TPMTPublic) ([]byte, error) {
	n, err := tpm2.ObjectName(pub)
	if err != nil {
		return nil, err
	}
	return n.Buffer, nil
}
