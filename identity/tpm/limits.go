package tpm

import "time"

// Caps on sizes that come from outside: from a peer (evidence, challenge, answer), from
// a file (the sealed key file) or from the TPM itself. Every error that enforces one
// names it; writers check the same caps before they write.
const (
	// MaxEvidenceSize is the largest canonical evidence document in bytes. Evidence is
	// about 6 KiB with an RSA-2048 EK certificate; it travels inside a federation
	// identity record (fleet.MaxRecordSize, 64 KiB) next to a 9 KiB enrolment certificate.
	MaxEvidenceSize = 24 << 10
	// MaxEKCertificate is the largest EK certificate (DER) in bytes. Manufacturers'
	// EK certificates are 1–2 KiB.
	MaxEKCertificate = 8 << 10
	// MaxTPMPublic is the largest TPMT_PUBLIC (EK or AK public area) in bytes; an
	// RSA-4096 key with a policy is under 600.
	MaxTPMPublic = 1 << 10
	// MaxTPMSignature is the largest TPMT_SIGNATURE in bytes (RSA-4096: 518).
	MaxTPMSignature = 1 << 10
	// MaxChallengeSize is the largest canonical challenge in bytes.
	MaxChallengeSize = 4 << 10
	// MaxAnswerSize is the largest canonical answer in bytes.
	MaxAnswerSize = 4 << 10
	// MaxQuote is the largest TPMS_ATTEST (a quote) in bytes.
	MaxQuote = 1 << 10
	// MaxCredential is the largest credential blob or encrypted secret of a challenge,
	// in bytes (an RSA-4096 EK's encrypted seed is 512).
	MaxCredential = 1 << 10
	// MaxSealedKeyFile is the largest sealed key file in bytes (identity.ReadKeyFile
	// reads at most 16 KiB of any key file).
	MaxSealedKeyFile = 16 << 10
	// MaxTPMResponse is the largest response accepted from a TPM simulator's socket.
	// TPMs answer at most 4 KiB (MAX_RESPONSE_SIZE of the reference implementation).
	MaxTPMResponse = 64 << 10
	// MaxNVRead is the most bytes read from one NV index (an EK certificate).
	MaxNVRead = MaxEKCertificate
)

// Time limits.
const (
	// MaxChallengeAge is how long a challenge stays answerable: an answer checked later
	// is refused (ErrChallengeExpired). A hardware TPM answers in well under a second.
	MaxChallengeAge = 30 * time.Second
	// commandTimeout bounds one command on a TPM simulator's socket. Generating an RSA
	// primary key is the slowest command; hardware TPMs can take seconds for it.
	commandTimeout = 2 * time.Minute
	// dialTimeout bounds connecting to a TPM simulator on loopback.
	dialTimeout = 5 * time.Second
	// busyTimeout bounds a simulator's answer to the first command (TPM2_Startup):
	// a simulator held by another client does not answer.
	busyTimeout = 5 * time.Second
)
