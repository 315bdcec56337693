package tpm

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/sios-project/sios/identity"
)

// maxDigestBuffer is the most bytes one TPM2_SequenceUpdate takes (TPM2B_MAX_BUFFER
// of every PC-client TPM).
const maxDigestBuffer = 1024

// Evidence makes the node's evidence with the AK in kf and the TPM's EK: the AK signs
// the binding statement of keys. note is non-empty when an EK certificate found in
// the TPM had to be left out (it says why); verifiers must then pin the EK by hash.
func (t *TPM) Evidence(kf *KeyFile, keys identity.PublicKey) (ev *Evidence, note string, err error) {
	return t.evidence(kf, keys, ekKinds())
}

// evidence is Evidence with the EK chosen among kinds.
func (t *TPM) evidence(kf *KeyFile, keys identity.PublicKey, kinds []ekKind) (ev *Evidence, note string, err error) {
	err = t.do(func(tr transport.TPM) error {
		ak, err := loadAK(tr, kf)
		if err != nil {
			return err
		}
		defer flush(tr, ak.handle)
		ek, err := findEK(tr, kinds)
		if err != nil {
			return err
		}
		defer flush(tr, ek.handle)
		note = ek.certNote
		ekKey, err := ekPublicKey(ek.public)
		if err != nil {
			return err
		}
		ekHash, err := EKSHA256(ekKey)
		if err != nil {
			return err
		}
		b := Binding{V: BindingVersion, NodeID: kf.NodeID, PublicKeyJSON: keys.JSON(), EKSHA256: ekHash, AKName: hex.EncodeToString(ak.name.Buffer)}
		msg, err := bindingMessage(&b)
		if err != nil {
			return err
		}
		sig, err := signTicketed(tr, ak, msg)
		if err != nil {
			return err
		}
		ev = &Evidence{V: EvidenceVersion, EKPublic: tpm2.Marshal(&ek.public), EKCertificate: ek.cert,
			AKPublic: kf.AKPublic, Binding: b, BindingSignature: tpm2.Marshal(sig)}
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	if _, err := ev.parts(); err != nil {
		return nil, "", fmt.Errorf("the evidence made does not parse: %v", err)
	}
	return ev, note, nil
}

// loadAK loads the AK of kf under the SRK (flushed again at once: a TPM without a
// resource manager has room for three transient objects).
func loadAK(tr transport.TPM, kf *KeyFile) (*object, error) {
	srk, err := createSRK(tr)
	if err != nil {
		return nil, err
	}
	defer flush(tr, srk.handle)
	if got := hex.EncodeToString(srk.name.Buffer); got != kf.SRKName {
		return nil, fmt.Errorf("%w: this TPM's storage root key is %.16s…, the attestation key was made under %.16s…", ErrOtherTPM, got, kf.SRKName)
	}
	return loadObject(tr, srk, kf.AKPublic, kf.AKPrivate)
}

// signTicketed has the restricted AK sign SHA-256(msg): the TPM hashes msg itself
// (TPM2_HashSequenceStart, TPM2_SequenceUpdate, TPM2_SequenceComplete) and returns a
// ticket saying msg did not start with TPM_GENERATED_VALUE, which TPM2_Sign requires
// of a restricted key, so it can never sign something that looks like a quote.
func signTicketed(tr transport.TPM, ak *object, msg []byte) (*tpm2.TPMTSignature, error) {
	hs, err := tpm2.HashSequenceStart{HashAlg: tpm2.TPMAlgSHA256}.Execute(tr)
	if err != nil {
		return nil, fmt.Errorf("hashing the binding statement: %v", err)
	}
	seq := tpm2.AuthHandle{Handle: hs.SequenceHandle, Auth: tpm2.PasswordAuth(nil)}
	for len(msg) > maxDigestBuffer {
		if _, err := (tpm2.SequenceUpdate{SequenceHandle: seq, Buffer: tpm2.TPM2BMaxBuffer{Buffer: msg[:maxDigestBuffer]}}).Execute(tr); err != nil {
			flush(tr, hs.SequenceHandle)
			return nil, fmt.Errorf("hashing the binding statement: %v", err)
		}
		msg = msg[maxDigestBuffer:]
	}
	done, err := tpm2.SequenceComplete{SequenceHandle: seq, Buffer: tpm2.TPM2BMaxBuffer{Buffer: msg}, Hierarchy: tpm2.TPMRHOwner}.Execute(tr)
	if err != nil {
		flush(tr, hs.SequenceHandle)
		return nil, fmt.Errorf("hashing the binding statement: %v", err)
	}
	rsp, err := tpm2.Sign{KeyHandle: ak.auth(), Digest: done.Result, InScheme: akScheme(), Validation: done.Validation}.Execute(tr)
	if err != nil {
		return nil, fmt.Errorf("signing the binding statement with the attestation key: %v", err)
	}
	return &rsp.Signature, nil
}

// Attestor answers challenges with the node's TPM: it keeps the AK and the EK loaded.
// It is safe for concurrent use (answers are made one at a time).
type Attestor struct {
	t      *TPM
	ak     *object
	ek     *endorsementKey
	closed bool // guarded by t.mu
}

// Attestor loads the AK of kf and the EK of ev (which must be this TPM's) to answer
// challenges. Close it before the TPM.
func (t *TPM) Attestor(kf *KeyFile, ev *Evidence) (*Attestor, error) {
	if !bytes.Equal(ev.AKPublic, kf.AKPublic) {
		return nil, errors.New("the evidence names another attestation key than the sealed key file holds")
	}
	p, err := ev.parts()
	if err != nil {
		return nil, err
	}
	kind, _ := ekKindOf(p.ek)
	a := &Attestor{t: t}
	err = t.do(func(tr transport.TPM) error {
		ak, err := loadAK(tr, kf)
		if err != nil {
			return err
		}
		ek, err := loadEK(tr, kind, &p.ek)
		if err != nil {
			flush(tr, ak.handle)
			return err
		}
		a.ak, a.ek = ak, ek
		return nil
	})
	if err != nil {
		return nil, err
	}
	return a, nil
}

// Answer activates the challenge's credential and quotes the SHA-256 PCRs 0–7 over its
// nonce. A credential made for another TPM's EK, or for another AK, does not activate.
func (a *Attestor) Answer(c *Challenge) (*Answer, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	var ans *Answer
	err := a.t.do(func(tr transport.TPM) error {
		if a.closed {
			return errors.New("the attestor is closed")
		}
		act, err := tpm2.ActivateCredential{
			ActivateHandle: a.ak.auth(),
			KeyHandle:      tpm2.AuthHandle{Handle: a.ek.handle, Name: a.ek.name, Auth: ekPolicySession()},
			CredentialBlob: tpm2.TPM2BIDObject{Buffer: c.CredentialBlob},
			Secret:         tpm2.TPM2BEncryptedSecret{Buffer: c.EncryptedSecret},
		}.Execute(tr)
		if err != nil {
			return fmt.Errorf("activating the challenge's credential: %v (it was made for another TPM's endorsement key or another attestation key)", err)
		}
		// A PCR extended between the quote and the read makes them differ: quote again.
		for range 3 {
			q, err := tpm2.Quote{
				SignHandle:     a.ak.auth(),
				QualifyingData: tpm2.TPM2BData{Buffer: c.Nonce},
				InScheme:       akScheme(),
				PCRSelect:      pcrSelection(quotePCRs()),
			}.Execute(tr)
			if err != nil {
				return fmt.Errorf("quoting: %v", err)
			}
			values, err := readPCRs(tr, quotePCRs())
			if err != nil {
				return err
			}
			att, err := q.Quoted.Contents()
			if err != nil {
				return fmt.Errorf("quote: %v", err)
			}
			info, err := att.Attested.Quote()
			if err != nil {
				return fmt.Errorf("quote: %v", err)
			}
			if !bytes.Equal(info.PCRDigest.Buffer, pcrDigest(values)) {
				continue
			}
			ans = &Answer{V: AnswerVersion, Secret: act.CertInfo.Buffer, Quote: q.Quoted.Bytes(), QuoteSignature: tpm2.Marshal(&q.Signature)}
			for _, v := range values {
				ans.PCRs = append(ans.PCRs, hex.EncodeToString(v))
			}
			return nil
		}
		return errors.New("quoting: the PCRs kept changing while they were quoted")
	})
	if err != nil {
		return nil, err
	}
	return ans, nil
}

// Close unloads the AK and the EK. The TPM stays open.
func (a *Attestor) Close() error {
	return a.t.do(func(tr transport.TPM) error {
		if a.closed {
			return nil
		}
		a.closed = true
		flush(tr, a.ak.handle)
		flush(tr, a.ek.handle)
		return nil
	})
}
