package succession

// Caps on attacker-controlled sizes and counts. The writing side (Sign*, Seal*, Assemble)
// and the reading side (Parse*, State) enforce the same ones, and every error that
// enforces a cap names it.
const (
	// MaxIDLen is the longest tenant, role name, principal id or node id, in bytes.
	// Tenants, roles and principals also follow the policy package's id rule.
	MaxIDLen = 128
	// MaxObservers is the most observer nodes a charter may name; k is at most this.
	MaxObservers = 16
	// MaxSuccessors is the most successors a charter may name.
	MaxSuccessors = 16
	// MaxAdmins is the most admins a charter may name.
	MaxAdmins = 16
	// MaxReasonLen is the longest reason of a removal or a refutation, in bytes.
	MaxReasonLen = 512
	// MaxDuration is the longest suspect_after, wait or accept_within, in seconds
	// (ten years of 366 days). It keeps every sum of times the state machine makes
	// far inside int64 and inside the years RFC 3339 can spell.
	MaxDuration = 10 * 366 * 24 * 60 * 60
	// MaxSeq is the largest charter seq: 2^53, the largest integer every JSON
	// implementation holds exactly.
	MaxSeq = 1 << 53

	// MaxCharterSize is the largest canonical charter in bytes. The largest charter
	// the other caps allow (16 observers, successors and admins of 128 bytes each) is
	// about 12 KiB with its signatures.
	MaxCharterSize = 16 << 10
	// MaxEventSize is the largest canonical presence, suspicion, refutation,
	// acceptance or removal in bytes. The largest (a removal with a 512-byte reason)
	// is about 5.6 KiB.
	MaxEventSize = 8 << 10
	// MaxCertificateSize is the largest canonical handover certificate in bytes: at
	// most max(MaxObservers, MaxAdmins) events of MaxEventSize and a small header.
	MaxCertificateSize = MaxObservers*MaxEventSize + 4<<10
	// MaxEvents is the most events one State call considers for one charter.
	MaxEvents = 1 << 14
	// MaxCharters is the most charter versions CurrentCharter considers for one role.
	MaxCharters = 1 << 10

	// MaxLetterPlaintext is the largest letter a holder may deposit, in bytes.
	MaxLetterPlaintext = 16 << 10
	// MaxLetterSize is the largest canonical sealed letter in bytes. The largest
	// letter the other caps allow (MaxLetterPlaintext, MaxObservers shares, ids of
	// MaxIDLen) is under 56 KiB, so that a letter fits a fed/1 record body with room
	// for the record's own members and signatures (fleet.MaxRecordSize is 64 KiB).
	MaxLetterSize = 58 << 10
	// MaxShareSize is the largest canonical released share (role-share/1) in bytes.
	MaxShareSize = 8 << 10
	// MaxKEMSize is the largest canonical node KEM key statement (node-kem/1) in bytes.
	MaxKEMSize = 8 << 10
	// MaxKEMKeyFile is the largest KEM private key file LoadKEMKey reads, in bytes.
	MaxKEMKeyFile = 4 << 10
)
