package invoke

import (
	"time"

	"github.com/sios-project/sios/consent"
)

// The pipeline's own bounds; a brain's budgets (tokens, time, rate) come from its file.
const (
	// maxToolRounds bounds the model ⇄ tool exchanges of one invocation.
	maxToolRounds = 4
	// defaultTimeout applies to a brain without a time budget.
	defaultTimeout = 60 * time.Second
	// remoteTimeout bounds a remote call; the envelope expires with it.
	remoteTimeout = 60 * time.Second
	// routeTimeout bounds the embeddings call of routing "auto"; past it, the router
	// routes lexically.
	routeTimeout = 3 * time.Second
)

// Bounds of clearance descent: a governed memory search under a consent grant
// (descent.go at the requester, release.go at the holder). The holder enforces them
// whatever the requester asks; the requester refuses an answer beyond them.
const (
	// ReleasePerSubject is how many memories of each subject a search asks for when the
	// caller says nothing, and MaxReleasePerSubject the most it may ask for.
	ReleasePerSubject    = 5
	MaxReleasePerSubject = 20
	// MaxReleased is the most memories one search releases, over every subject.
	MaxReleased = 100
	// MaxReleaseOutput is the largest release output in bytes: the holder stops adding
	// memories before it would pass it (within fleet.MaxCallAnswer).
	MaxReleaseOutput = 4 << 20
	// MaxConsentHeader is the longest X-Sios-Consent value: a grant of
	// consent.MaxGrantSize bytes in unpadded base64url.
	MaxConsentHeader = (consent.MaxGrantSize*4 + 2) / 3
)
