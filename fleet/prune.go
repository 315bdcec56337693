package fleet

import (
	"slices"
	"strings"
)

// Pins reports whether the root with this id is pinned. A root id is derived from its
// key, so the id alone names the key.
func (t Trust) Pins(rootID string) bool {
	_, ok := t.roots[rootID]
	return ok
}

// Untrusted lists the nodes whose feeds l holds under an institution root trust does
// not pin, sorted: those Prune would drop.
func (l *Log) Untrusted(trust Trust) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for node, f := range l.feeds {
		if !trust.Pins(f.view.Institution) {
			out = append(out, node)
		}
	}
	slices.Sort(out)
	return out
}

// Prune drops the feeds of every node whose institution root trust no longer pins,
// with any records held for them, and returns their ids, sorted. The evidence of their
// forks stays (Forks). Records they send later are refused as untrusted, unless their
// root is pinned again.
func (l *Log) Prune(trust Trust) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for node, f := range l.feeds {
		if trust.Pins(f.view.Institution) {
			continue
		}
		delete(l.feeds, node)
		l.dropHeldLocked(node)
		out = append(out, node)
	}
	slices.Sort(out)
	return out
}

// Prune drops from the fleet-wide log the feeds of nodes whose institution trust() no
// longer pins (Log.Prune), forgets their membership state, attestation and
// connections, and returns their ids. They stop being peers at once: Peers and
// Candidates no longer list them, and their connections are refused at the next
// handshake or request (trust is checked on every one).
func (f *Fleet) Prune() []string {
	gone := f.cfg.Log.Prune(f.cfg.Trust())
	if len(gone) == 0 {
		return nil
	}
	f.mu.Lock()
	for _, node := range gone {
		delete(f.peers, node)
		delete(f.pending, node)
		delete(f.attest, node)
		for k, c := range f.clients {
			if strings.HasPrefix(k, node+"@") {
				c.CloseIdleConnections()
				delete(f.clients, k)
			}
		}
		for k := range f.tlsConfs {
			if strings.HasPrefix(k, node+" ") {
				delete(f.tlsConfs, k)
			}
		}
		for k := range f.digests {
			if strings.HasPrefix(k, node+"@") {
				delete(f.digests, k)
			}
		}
	}
	f.mu.Unlock()
	f.notify()
	return gone
}
