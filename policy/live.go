package policy

import "sync/atomic"

// Live is the policy set in force on a running node: an Engine that Replace swaps
// atomically when the operator reloads the policies (SIGHUP), so that every decision
// after the swap — on any goroutine — sees the new set and none sees a mixture. Each
// decision is passed to the observer given to NewLive (metrics), if any.
type Live struct {
	e       atomic.Pointer[Engine]
	observe func(Request, Decision)
}

// NewLive returns e in force; observe (which may be nil, and must not block) sees
// every decision.
func NewLive(e *Engine, observe func(Request, Decision)) *Live {
	l := &Live{observe: observe}
	l.e.Store(e)
	return l
}

// Decide decides req with the policies in force.
func (l *Live) Decide(req Request) Decision {
	d := l.e.Load().Decide(req)
	if l.observe != nil {
		l.observe(req, d)
	}
	return d
}

// Explain explains req with the policies in force (Engine.Explain).
func (l *Live) Explain(req Request) string { return l.e.Load().Explain(req) }

// Len is the number of policies in force.
func (l *Live) Len() int { return l.e.Load().Len() }

// Engine is the engine in force now.
func (l *Live) Engine() *Engine { return l.e.Load() }

// Replace puts e in force.
func (l *Live) Replace(e *Engine) { l.e.Store(e) }
