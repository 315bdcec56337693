package fleet

import "time"

// Caps on attacker-controlled sizes. Every error that enforces one names it.
const (
	// MaxRecordSize is the largest canonical record in bytes.
	MaxRecordSize = 64 << 10
	// MaxBrains is the most brains one brains record may offer.
	MaxBrains = 256
	// MaxIDLen is the longest node id, brain id, brain kind or audit schema.
	MaxIDLen = 128
	// MaxAddrLen is the longest endpoint address (host:port).
	MaxAddrLen = 255
	// MaxSeq is the largest sequence number: 2^53, the largest integer every JSON
	// implementation holds exactly.
	MaxSeq = 1 << 53
	// MaxHeldPerNode is the most out-of-order records held for one node while their
	// predecessor is missing.
	MaxHeldPerNode = 256
	// MaxHeld is the most out-of-order records held for all nodes together.
	MaxHeld = 4096
	// MaxSinceBatch is the most records one Since call returns; anti-entropy asks again.
	MaxSinceBatch = 1024
)

// Caps of the remote-call formats (fed-call/1, fed-call/2, fed-reply/1).
const (
	// MaxEnvelopeSize is the largest canonical fed-call/1 envelope in bytes.
	MaxEnvelopeSize = 16 << 10
	// MaxConsentSize is the largest consent grant a fed-call/2 envelope carries: the
	// grant format's own cap (consent.MaxGrantSize, checked equal by its tests).
	MaxConsentSize = 16 << 10
	// MaxEnvelopeSize2 is the largest canonical fed-call/2 envelope in bytes: a
	// fed-call/1 envelope and its grant.
	MaxEnvelopeSize2 = MaxEnvelopeSize + MaxConsentSize
	// MaxReplySize is the largest canonical reply in bytes.
	MaxReplySize = 16 << 10
	// MaxReplyMessage is the longest human-readable message in a reply, in bytes.
	MaxReplyMessage = 1024
	// MaxClockSkew is how far in the future an envelope may have been issued by the
	// origin's clock before the target refuses it.
	MaxClockSkew = 30 * time.Second
	// MaxEnvelopeLifetime is the longest an envelope may be valid (expires - issued):
	// it bounds how long a target must remember each nonce.
	MaxEnvelopeLifetime = 5 * time.Minute
	// MaxNonces is the most live nonces a ReplayGuard holds; beyond it calls are refused
	// rather than a nonce forgotten early.
	MaxNonces = 1 << 20
)

// Caps of membership and the fleet transport.
const (
	// MaxEnrolmentExtension is the largest enrolment extension, in bytes, a peer may
	// present. An enrolment certificate is about 9 KiB.
	MaxEnrolmentExtension = 64 << 10
	// MaxPacketSize is the largest memberlist packet (and so the largest compound
	// gossip message) the transport carries.
	MaxPacketSize = 256 << 10
	// MaxSyncSize is the largest anti-entropy request or answer in bytes.
	MaxSyncSize = 32 << 20
	// MaxPending is the most gossiped members awaiting an identity check at once.
	MaxPending = 1024
)
