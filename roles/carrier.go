package roles

import (
	"sync"
	"time"

	"github.com/sios-project/sios/fleet"
	"github.com/sios-project/sios/identity"
)

// Carrier is the fleet as a Keeper sees it: where succession documents come from and go
// to. It must be safe for concurrent use.
type Carrier interface {
	// Publish appends a record of kind (fleet.KindRole or fleet.KindKEM) carrying doc
	// to this node's feed, and gossips it when the node is in a fleet.
	Publish(kind string, doc []byte) error
	// Since returns the documents carried in the feeds of this node's institution that
	// come after pos (nil: from the start), and the position after them.
	Since(pos Position) ([]Carried, Position)
	// NodeKey returns the signing keys of a node of this node's institution: nodes of
	// other institutions, and nodes the fleet has not verified, are unknown.
	NodeKey(node string) (identity.PublicKey, bool)
	// Changed returns a channel closed when the carrier next holds new documents (or
	// anything else of the fleet changes).
	Changed() <-chan struct{}
}

// Position is how far a Keeper has read each node's feed: the next seq to read, by node.
type Position map[string]uint64

// Carried is one succession document and the node whose feed carried it.
type Carried struct {
	Feed string // the node whose feed holds the record
	Kind string // fleet.KindRole or fleet.KindKEM
	Doc  []byte
}

// FleetCarrier carries documents in the node's own feed and the fleet's log: the
// Carrier of a running node.
type FleetCarrier struct {
	Node *identity.Node
	Feed *fleet.Publisher // this node's own feed
	Log  *fleet.Log       // the fleet-wide log, from which other nodes' feeds are read
	// Fleet returns the node's fleet membership, nil while it runs alone: then
	// documents are only appended to its feed, and the fleet carries them when it joins.
	Fleet func() *fleet.Fleet

	mu      sync.Mutex
	changed chan struct{} // guarded by mu; closed by Publish when the node runs alone
}

// Publish appends doc to the node's feed (through the fleet when it runs, which also
// adds it to the log and gossips it).
func (c *FleetCarrier) Publish(kind string, doc []byte) error {
	body := fleet.NewSuccessionBody(doc)
	if f := c.Fleet(); f != nil {
		return f.Publish(kind, body)
	}
	if _, err := c.Feed.Publish(kind, body, time.Now()); err != nil {
		return err
	}
	c.mu.Lock()
	if c.changed != nil {
		close(c.changed)
		c.changed = nil
	}
	c.mu.Unlock()
	return nil
}

// Since reads the own feed from the Publisher and every other feed of the institution
// from the log.
func (c *FleetCarrier) Since(pos Position) ([]Carried, Position) {
	next := Position{}
	for k, v := range pos {
		next[k] = v
	}
	var out []Carried
	self := c.Node.ID()
	take := func(node string, recs [][]byte) {
		for _, raw := range recs {
			next[node]++
			r, err := fleet.Parse(raw)
			if err != nil {
				continue // the log and the publisher verified it; nothing else to do
			}
			if b, ok := r.Content().(*fleet.SuccessionBody); ok {
				out = append(out, Carried{Feed: node, Kind: r.Kind, Doc: b.Document()})
			}
		}
	}
	take(self, c.Feed.Records(next[self]))
	root := c.Node.Cert.RootID
	for _, v := range c.Log.View() {
		if v.Node == self || v.Institution != root {
			continue
		}
		for {
			recs := c.Log.Since(v.Node, next[v.Node])
			if len(recs) == 0 {
				break
			}
			take(v.Node, recs)
		}
	}
	return out, next
}

// NodeKey is the node's own key, or the key of a node of its institution in the log.
func (c *FleetCarrier) NodeKey(node string) (identity.PublicKey, bool) {
	if node == c.Node.ID() {
		return c.Node.Public(), true
	}
	v, ok := c.Log.NodeView(node)
	if !ok || v.Institution != c.Node.Cert.RootID {
		return identity.PublicKey{}, false
	}
	return c.Log.Key(node)
}

// Changed is the fleet's change channel, or one closed by the next Publish when the
// node runs alone.
func (c *FleetCarrier) Changed() <-chan struct{} {
	if f := c.Fleet(); f != nil {
		return f.Changed()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.changed == nil {
		c.changed = make(chan struct{})
	}
	return c.changed
}
