package console

import "time"

// Caps on sessions and on what a browser sends, in one place. Every error that
// enforces one names it.
const (
	// MaxSessions is the most sessions the console holds at once, for all principals.
	// A sign-in beyond it is refused until sessions end or expire.
	MaxSessions = 1024
	// MaxSessionsPerPrincipal is the most sessions one principal holds; a further
	// sign-in ends that principal's oldest session.
	MaxSessionsPerPrincipal = 8
	// SessionLifetime is how long a session lasts at most from its sign-in. An OIDC
	// session also ends when its ID token expires, if that is sooner.
	SessionLifetime = 8 * time.Hour
	// SessionIdle ends a session not used for this long.
	SessionIdle = 30 * time.Minute
	// SignInFlowLifetime is how long a sign-in may take: the sign-in form's token,
	// and an OIDC sign-in from leaving for the identity provider to coming back.
	SignInFlowLifetime = 10 * time.Minute

	// MaxFormBytes bounds a form a browser posts.
	MaxFormBytes = 16 << 10
	// MaxFormFields is the most fields a form may carry.
	MaxFormFields = 32
	// MaxFieldBytes bounds one form field or query parameter (a filter, a key name).
	MaxFieldBytes = 1024
	// MaxCookieBytes bounds a console cookie's value read back from a browser.
	MaxCookieBytes = 2048

	// DefaultTailRows and MaxTailRows are how many records the audit page lists.
	DefaultTailRows = 50
	MaxTailRows     = 500
	// MaxTailScan is the most log entries one audit page examines for records the
	// viewer may read and that match the filters; the page then offers to go on.
	MaxTailScan = 20_000
	// MaxLinkScan is how far back from a record (or from the end of the log) the
	// console looks for the record a hash names.
	MaxLinkScan = 4096
	// MaxExportEntries is the most entries one evidence bundle from the console holds
	// (about 3 KB each); larger exports are for 'sios audit export' on the node.
	MaxExportEntries = 20_000

	// MaxVerifyJobs is how many log verifications run at once: one, which everyone
	// who asks meanwhile watches. KeepVerifyJobs finished ones are kept for
	// VerifyJobKept.
	MaxVerifyJobs  = 1
	KeepVerifyJobs = 16
	VerifyJobKept  = 30 * time.Minute

	// MaxPrincipalRows is how many principals the principals page lists at once.
	MaxPrincipalRows = 200

	// DiscoveryTTL is how long an identity provider's discovery document (its
	// authorization and token endpoints) is reused before it is fetched again.
	DiscoveryTTL = time.Hour
	// ExchangeTimeout bounds an OIDC discovery or code exchange with the provider.
	ExchangeTimeout = 10 * time.Second
	// DiscoveryRetry is how long after a failed discovery the console waits before it
	// asks the provider again: anyone may start a sign-in, and none may make the node
	// hammer a provider that is down.
	DiscoveryRetry = 10 * time.Second
	// ExchangesPerMinute and ExchangeBurst bound the code exchanges the node makes
	// with all providers together, for the same reason.
	ExchangesPerMinute = 600
	ExchangeBurst      = 60
	// MaxExports is how many evidence bundles the console builds at once (each is
	// held in memory, up to MaxExportEntries entries).
	MaxExports = 2
)
