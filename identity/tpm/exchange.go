package tpm

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/google/go-tpm/tpm2"
)

// The fresh-attestation exchange. The verifier holds a node's Verified evidence:
//
//	challenge, pending, _ := verified.Challenge(now)   // verifier
//	answer, _ := attestor.Answer(challenge)            // the node, with its TPM
//	attested, err := pending.Check(answer, later)      // verifier
//
// The challenge's credential is TPM2_MakeCredential computed in software: a secret
// encrypted to the EK, bound to the AK's Name. TPM2_ActivateCredential releases it
// only inside the TPM holding the EK, and only with the object of that Name loaded
// there: returning it proves the AK is resident in that TPM. The quote over the
// verifier's nonce, signed by that AK, proves the TPM answered now.

// Versions of the exchange formats. A published version never changes meaning.
const (
	ChallengeVersion = "sios-tpm-challenge/1"
	AnswerVersion    = "sios-tpm-answer/1"
)

// nonceSize and secretSize are the sizes of a challenge's nonce and credential secret.
const (
	nonceSize  = 32
	secretSize = 32
)

// Challenge is what a verifier sends a node to attest it now.
type Challenge struct {
	V string `json:"v"`
	// Nonce is 32 random bytes the quote must carry as its qualifying data.
	Nonce []byte `json:"nonce"`
	// CredentialBlob and EncryptedSecret are TPM2_MakeCredential's outputs (the
	// contents of TPM2B_ID_OBJECT and TPM2B_ENCRYPTED_SECRET).
	CredentialBlob  []byte `json:"credential_blob"`
	EncryptedSecret []byte `json:"encrypted_secret"`
}

// Answer is the node's reply to a Challenge.
type Answer struct {
	V string `json:"v"`
	// Secret is the credential TPM2_ActivateCredential released (32 bytes).
	Secret []byte `json:"secret"`
	// Quote is the TPMS_ATTEST of TPM2_Quote over the SHA-256 PCRs 0–7 with the
	// challenge's nonce as qualifying data; QuoteSignature the AK's TPMT_SIGNATURE of it.
	Quote          []byte `json:"quote"`
	QuoteSignature []byte `json:"quote_signature"`
	// PCRs are the values (hex) of the SHA-256 PCRs 0–7 the quote's digest covers.
	PCRs []string `json:"pcrs"`
}

// Marshal returns the canonical encoding of the challenge.
func (c *Challenge) Marshal() ([]byte, error) {
	return marshalCanonical("challenge", c, MaxChallengeSize, "MaxChallengeSize", c.validate)
}

// ParseChallenge decodes a challenge (canonical JSON with exactly its members).
func ParseChallenge(b []byte) (*Challenge, error) {
	var c Challenge
	if err := parseCanonical("challenge", b, MaxChallengeSize, "MaxChallengeSize", &c, c.validate); err != nil {
		return nil, err
	}
	return &c, nil
}

func (c *Challenge) validate() error {
	if c.V != ChallengeVersion {
		return fmt.Errorf("challenge v is %q, want %q", short(c.V), ChallengeVersion)
	}
	if len(c.Nonce) != nonceSize {
		return fmt.Errorf("challenge nonce must be %d bytes", nonceSize)
	}
	if len(c.CredentialBlob) == 0 || len(c.CredentialBlob) > MaxCredential || len(c.EncryptedSecret) == 0 || len(c.EncryptedSecret) > MaxCredential {
		return fmt.Errorf("challenge credential_blob and encrypted_secret must be 1–%d bytes (MaxCredential)", MaxCredential)
	}
	return nil
}

// Marshal returns the canonical encoding of the answer.
func (a *Answer) Marshal() ([]byte, error) {
	return marshalCanonical("answer", a, MaxAnswerSize, "MaxAnswerSize", func() error { _, err := a.quote(); return err })
}

// ParseAnswer decodes an answer (canonical JSON with exactly its members). It checks
// no signature: Pending.Check does.
func ParseAnswer(b []byte) (*Answer, error) {
	var a Answer
	if err := parseCanonical("answer", b, MaxAnswerSize, "MaxAnswerSize", &a, func() error { _, err := a.quote(); return err }); err != nil {
		return nil, err
	}
	return &a, nil
}

// quoteParts is an answer's quote decoded and checked in form.
type quoteParts struct {
	attest tpm2.TPMSAttest
	info   *tpm2.TPMSQuoteInfo
	sig    tpm2.TPMTSignature
	pcrs   [][]byte
}

// quote checks the answer's form and decodes its quote.
func (a *Answer) quote() (*quoteParts, error) {
	if a.V != AnswerVersion {
		return nil, fmt.Errorf("answer v is %q, want %q", short(a.V), AnswerVersion)
	}
	if len(a.Secret) != secretSize {
		return nil, fmt.Errorf("answer secret must be %d bytes", secretSize)
	}
	if len(a.Quote) == 0 || len(a.Quote) > MaxQuote {
		return nil, fmt.Errorf("answer quote must be 1–%d bytes (MaxQuote)", MaxQuote)
	}
	att, err := tpm2.Unmarshal[tpm2.TPMSAttest](a.Quote)
	if err != nil {
		return nil, fmt.Errorf("answer quote: %v", err)
	}
	if !bytes.Equal(tpm2.Marshal(att), a.Quote) {
		return nil, errors.New("answer quote is not a single canonical TPMS_ATTEST")
	}
	if att.Type != tpm2.TPMSTAttestQuote {
		return nil, fmt.Errorf("answer quote is a TPMS_ATTEST of type %#x, not a quote", uint16(att.Type))
	}
	info, err := att.Attested.Quote()
	if err != nil {
		return nil, fmt.Errorf("answer quote: %v", err)
	}
	sig, err := parseSignature(a.QuoteSignature)
	if err != nil {
		return nil, fmt.Errorf("answer quote_signature: %v", err)
	}
	want := quotePCRs()
	if len(a.PCRs) != len(want) {
		return nil, fmt.Errorf("answer pcrs must hold the %d values of SHA-256 PCRs %s", len(want), joinInts(want))
	}
	p := &quoteParts{attest: *att, info: info, sig: *sig}
	for _, v := range a.PCRs {
		if !isHex(v, 32) {
			return nil, errors.New("answer pcrs must be SHA-256 values in lowercase hex")
		}
		b, _ := hex.DecodeString(v)
		p.pcrs = append(p.pcrs, b)
	}
	return p, nil
}

// Pending is a challenge a verifier sent and awaits the answer to. It is checked once:
// not safe for concurrent use.
type Pending struct {
	v      *Verified
	nonce  []byte
	secret []byte
	made   time.Time
	used   bool
}

// Challenge makes a challenge for the node whose evidence v is, and what Check needs
// to judge the answer.
func (v *Verified) Challenge(now time.Time) (*Challenge, *Pending, error) {
	nonce, secret := make([]byte, nonceSize), make([]byte, secretSize)
	rand.Read(nonce)
	rand.Read(secret)
	ek, err := tpm2.ImportEncapsulationKey(&v.ek)
	if err != nil {
		return nil, nil, fmt.Errorf("node %s's EK: %v", v.NodeID, err)
	}
	blob, encSecret, err := tpm2.CreateCredential(rand.Reader, ek, v.akName, secret)
	if err != nil {
		return nil, nil, fmt.Errorf("making a credential for node %s: %v", v.NodeID, err)
	}
	c := &Challenge{V: ChallengeVersion, Nonce: nonce, CredentialBlob: blob, EncryptedSecret: encSecret}
	return c, &Pending{v: v, nonce: nonce, secret: secret, made: now}, nil
}

// Attested is the outcome of a fresh attestation: the node, its EK, and what its TPM
// reported.
type Attested struct {
	NodeID   string
	EKSHA256 string
	// PCRs are the SHA-256 PCRs 0–7 the TPM quoted.
	PCRs [][]byte
	// Clock, ResetCount and RestartCount are the TPM's clock information in the quote.
	Clock        uint64
	ResetCount   uint32
	RestartCount uint32
}

// Check judges an answer to the challenge p was made for, at time now. The checks, in
// order, each with its own error: the challenge is unused and younger than
// MaxChallengeAge (ErrChallengeExpired); the quote is signed by the evidence's AK
// (ErrQuoteSignature); it is over this challenge's nonce (ErrStaleNonce); the secret
// is the credential's (ErrActivation); the PCR values are those quoted (ErrQuotePCRs).
func (p *Pending) Check(a *Answer, now time.Time) (*Attested, error) {
	if p.used {
		return nil, fmt.Errorf("node %s: %w: it was already answered", p.v.NodeID, ErrChallengeExpired)
	}
	p.used = true
	if age := now.Sub(p.made); age > MaxChallengeAge || age < -time.Second {
		return nil, fmt.Errorf("node %s: %w: answered %v after it was made, more than %v (MaxChallengeAge)", p.v.NodeID, ErrChallengeExpired, age.Round(time.Millisecond), MaxChallengeAge)
	}
	q, err := a.quote()
	if err != nil {
		return nil, fmt.Errorf("node %s: %v", p.v.NodeID, err)
	}
	if !verifyECDSA(p.v.ak, q.sig, a.Quote) {
		return nil, fmt.Errorf("node %s: %w (it was made by another TPM or another key)", p.v.NodeID, ErrQuoteSignature)
	}
	if q.attest.Magic != tpm2.TPMGeneratedValue {
		return nil, fmt.Errorf("node %s: %w (not a TPM-generated structure)", p.v.NodeID, ErrQuoteSignature)
	}
	if subtle.ConstantTimeCompare(q.attest.ExtraData.Buffer, p.nonce) != 1 {
		return nil, fmt.Errorf("node %s: %w: an answer to an earlier challenge", p.v.NodeID, ErrStaleNonce)
	}
	if subtle.ConstantTimeCompare(a.Secret, p.secret) != 1 {
		return nil, fmt.Errorf("node %s: %w: the secret is not the credential's, so its AK is not resident in the TPM holding EK %s", p.v.NodeID, ErrActivation, p.v.EKSHA256)
	}
	if !bytes.Equal(tpm2.Marshal(&q.info.PCRSelect), tpm2.Marshal(pcrSelection(quotePCRs()))) {
		return nil, fmt.Errorf("node %s: %w: the quote covers other PCRs than SHA-256 %s", p.v.NodeID, ErrQuotePCRs, joinInts(quotePCRs()))
	}
	if !bytes.Equal(q.info.PCRDigest.Buffer, pcrDigest(q.pcrs)) {
		return nil, fmt.Errorf("node %s: %w", p.v.NodeID, ErrQuotePCRs)
	}
	return &Attested{
		NodeID: p.v.NodeID, EKSHA256: p.v.EKSHA256, PCRs: q.pcrs,
		Clock: q.attest.ClockInfo.Clock, ResetCount: q.attest.ClockInfo.ResetCount, RestartCount: q.attest.ClockInfo.RestartCount,
	}, nil
}
