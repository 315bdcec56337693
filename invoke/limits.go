package invoke

import "time"

// The pipeline's own bounds; a brain's budgets (tokens, time, rate) come from its file.
const (
	// maxToolRounds bounds the model ⇄ tool exchanges of one invocation.
	maxToolRounds = 4
	// defaultTimeout applies to a brain without a time budget.
	defaultTimeout = 60 * time.Second
	// remoteTimeout bounds a remote call; the envelope expires with it.
	remoteTimeout = 60 * time.Second
)
