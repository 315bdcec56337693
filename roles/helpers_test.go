package roles

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/oar"
	"github.com/sios-project/sios/policy"
	"github.com/sios-project/sios/succession"
)

// net is an in-memory fleet: every node's feed of carried documents, a clock every
// node shares, and the keys of one institution. Its carrier is what a node's
// FleetCarrier is, without gossip: a published document reaches every node that is
// not cut off.
type net struct {
	t     testing.TB
	mu    sync.Mutex
	now   time.Time
	feeds map[string][]Carried
	keys  map[string]identity.PublicKey
	cut   map[string]bool // nodes partitioned away: they neither send nor receive
	ch    chan struct{}
}

func newNet(t testing.TB) *net {
	return &net{t: t, now: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC), feeds: map[string][]Carried{},
		keys: map[string]identity.PublicKey{}, cut: map[string]bool{}, ch: make(chan struct{})}
}

func (n *net) clock() time.Time {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.now
}

func (n *net) advance(d time.Duration) {
	n.mu.Lock()
	n.now = n.now.Add(d)
	n.mu.Unlock()
}

// carrier is one node's view of the net.
type carrier struct {
	n    *net
	self string
}

func (c *carrier) Publish(kind string, doc []byte) error {
	c.n.mu.Lock()
	defer c.n.mu.Unlock()
	c.n.feeds[c.self] = append(c.n.feeds[c.self], Carried{Feed: c.self, Kind: kind, Doc: doc})
	close(c.n.ch)
	c.n.ch = make(chan struct{})
	return nil
}

func (c *carrier) Since(pos Position) ([]Carried, Position) {
	c.n.mu.Lock()
	defer c.n.mu.Unlock()
	next := Position{}
	for k, v := range pos {
		next[k] = v
	}
	var out []Carried
	for node, docs := range c.n.feeds {
		if node != c.self && (c.n.cut[node] || c.n.cut[c.self]) {
			continue
		}
		out = append(out, docs[next[node]:]...)
		next[node] = uint64(len(docs))
	}
	return out, next
}

func (c *carrier) NodeKey(node string) (identity.PublicKey, bool) {
	c.n.mu.Lock()
	defer c.n.mu.Unlock()
	k, ok := c.n.keys[node]
	return k, ok
}

func (c *carrier) Changed() <-chan struct{} {
	c.n.mu.Lock()
	defer c.n.mu.Unlock()
	return c.n.ch
}

// member is one node of the net: its keeper and the records its ledger took.
type member struct {
	id      string
	node    *identity.Node
	keeper  *Keeper
	dir     string
	mu      sync.Mutex
	records []*oar.Record
	broken  bool // the ledger refuses records
}

func (m *member) audit(_ context.Context, r *oar.Record) (*oar.Receipt, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.broken {
		return nil, errors.New("ledger unavailable")
	}
	m.records = append(m.records, r)
	return &oar.Receipt{Index: uint64(len(m.records) - 1)}, nil
}

// actions are the actions of the records the member wrote, in order.
func (m *member) actions(action string) []*oar.Record {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []*oar.Record
	for _, r := range m.records {
		if r.Action == action {
			out = append(out, r)
		}
	}
	return out
}

// institution makes n nodes of one institution on the net, sorted by node id, each
// with a keeper that has stated its KEM key.
func (n *net) institution(count int) []*member {
	n.t.Helper()
	dir := n.t.TempDir()
	var ms []*member
	root := ""
	for i := range count {
		res, err := identity.Init(filepath.Join(dir, string(rune('a'+i))), "n", root, n.now)
		if err != nil {
			n.t.Fatal(err)
		}
		if root == "" {
			root = res.RootKeyFile
		}
		n.keys[res.Node.ID()] = res.Node.Public()
		ms = append(ms, &member{id: res.Node.ID(), node: res.Node, dir: filepath.Join(dir, string(rune('a'+i)), "roles")})
	}
	slices.SortFunc(ms, func(a, b *member) int { return strings.Compare(a.id, b.id) })
	for _, m := range ms {
		n.start(m)
		if err := m.keeper.StateKEM(); err != nil {
			n.t.Fatal(err)
		}
	}
	return ms
}

// start (re)makes the member's keeper on its directory: a restart.
func (n *net) start(m *member) {
	n.t.Helper()
	kem, err := succession.OpenKEMKey(filepath.Dir(m.dir))
	if err != nil {
		n.t.Fatal(err)
	}
	k, err := New(Config{Identity: m.node, KEM: kem, Dir: m.dir, Carrier: &carrier{n: n, self: m.id}, Audit: m.audit, Now: n.clock})
	if err != nil {
		n.t.Fatal(err)
	}
	m.keeper = k
}

// settle runs every keeper's Step until none publishes anything more.
func (n *net) settle(ms ...*member) {
	n.t.Helper()
	for range 20 {
		before := n.docs()
		for _, m := range ms {
			m.keeper.Step(context.Background())
		}
		if n.docs() == before {
			return
		}
	}
	n.t.Fatal("the keepers did not settle")
}

func (n *net) docs() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	c := 0
	for _, f := range n.feeds {
		c += len(f)
	}
	return c
}

// run advances the clock by d in steps of a second, settling the keepers at each.
func (n *net) run(d time.Duration, ms ...*member) {
	n.t.Helper()
	for t := time.Duration(0); t < d; t += time.Second {
		n.advance(time.Second)
		n.settle(ms...)
	}
}

var operator = By{Actor: oar.Actor{ID: "operator"}, Decision: &oar.Decision{Effect: "allow", Policies: []string{"operator"}}}

func as(principal string) By {
	b := operator
	b.Principal = principal
	return b
}

func principal(id string, roles ...string) *policy.Principal {
	return &policy.Principal{ID: id, Tenant: "trust", Clearance: policy.Official, Roles: roles}
}
