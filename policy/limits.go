package policy

// Caps on policy input. Policy files are written by operators, but they are still bytes
// from outside the binary: every cap is named in the error that enforces it.
const (
	// MaxPolicyFileSize is the largest policy file Load accepts, in bytes.
	MaxPolicyFileSize = 1 << 20
	// MaxPolicies is the most policies Load accepts across all files. Every decision
	// evaluates every policy, so this also bounds the cost of one decision.
	MaxPolicies = 10_000
	// MaxPolicyIDLen is the longest @id Load accepts, in bytes.
	MaxPolicyIDLen = 256
	// MaxCachedRecords is the most Cedar records an engine keeps of each kind
	// (principal, resource, context attributes) to reuse across decisions.
	MaxCachedRecords = 4096
)

// Limits on the principal store (principals.json).
const (
	MaxPrincipalsFile   = 64 << 20  // bytes of the store file
	MaxPrincipals       = 1_000_000 // principals in one store
	MaxKeysPerPrincipal = 16        // named API keys one principal may hold
)
