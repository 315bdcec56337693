package tpm

import "errors"

// Errors callers branch on (errors.Is). Every error wrapping one says what was found.
var (
	// ErrOtherTPM: the sealed key file belongs to another TPM, or to this TPM before
	// its owner hierarchy was cleared. A copied data directory fails with it.
	ErrOtherTPM = errors.New("the key was sealed to another TPM")
	// ErrPCRChanged: a PCR the key was sealed to no longer holds its sealed value.
	ErrPCRChanged = errors.New("PCR values differ from those the key was sealed to")

	// ErrBindingSignature: the binding statement is not signed by the evidence's AK
	// (the statement, or the AK, was altered).
	ErrBindingSignature = errors.New("the binding statement is not signed by the attestation key")
	// ErrBindingMismatch: the binding statement is validly signed but names another
	// node, other keys, another EK or another AK than the verifier expects.
	ErrBindingMismatch = errors.New("the binding statement does not match")
	// ErrEKCertificate: the evidence's EK certificate does not certify its EK.
	ErrEKCertificate = errors.New("the EK certificate does not certify the endorsement key")
	// ErrUnknownEK: the EK is neither pinned by hash nor certified by a pinned EK CA.
	ErrUnknownEK = errors.New("the endorsement key is not accepted")

	// ErrChallengeExpired: the answer was checked more than MaxChallengeAge after the
	// challenge was made, or the challenge was already used.
	ErrChallengeExpired = errors.New("the challenge has expired")
	// ErrQuoteSignature: the quote is not signed by the AK bound in the evidence (it
	// comes from another TPM or another key).
	ErrQuoteSignature = errors.New("the quote is not signed by the attested AK")
	// ErrStaleNonce: the quote is validly signed but over another nonce: an old answer
	// replayed.
	ErrStaleNonce = errors.New("the quote is not over this challenge's nonce")
	// ErrActivation: the answer's secret is not the credential's: the AK was not
	// loaded in the TPM that holds the evidence's EK.
	ErrActivation = errors.New("credential activation failed")
	// ErrQuotePCRs: the PCR values sent with the quote are not the ones it signs.
	ErrQuotePCRs = errors.New("the PCR values do not match the quote")
)
