package brain

import "sync/atomic"

// Live is the catalogue in force on a running node: Replace swaps it atomically when
// the operator reloads the brains (SIGHUP). A request that already holds a *Brain
// keeps it to the end; every lookup after the swap sees the new catalogue.
type Live struct{ c atomic.Pointer[Catalogue] }

// NewLive returns c in force.
func NewLive(c *Catalogue) *Live {
	l := &Live{}
	l.c.Store(c)
	return l
}

// Get returns the brain with id in the catalogue in force.
func (l *Live) Get(id string) (*Brain, bool) { return l.c.Load().Get(id) }

// All returns the brains in force, by id.
func (l *Live) All() []*Brain { return l.c.Load().All() }

// Catalogue is the catalogue in force now.
func (l *Live) Catalogue() *Catalogue { return l.c.Load() }

// Replace puts c in force.
func (l *Live) Replace(c *Catalogue) { l.c.Store(c) }
