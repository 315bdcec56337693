package roles

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/oar"
	"github.com/sios-project/sios/policy"
	"github.com/sios-project/sios/succession"
)

// Config builds a Keeper.
type Config struct {
	Identity *identity.Node
	// KEM is the node's HPKE key (succession.OpenKEMKey): letter shares are sealed to it.
	KEM *succession.KEMKey
	// Dir is where the keeper keeps its marks (DATA/roles).
	Dir     string
	Carrier Carrier
	// Audit appends a record to the node's ledger and returns once it is durable. A
	// step whose record fails does not happen.
	Audit func(context.Context, *oar.Record) (*oar.Receipt, error)
	Log   *slog.Logger
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// Keeper keeps the chartered roles of the node's institution. It is safe for
// concurrent use.
type Keeper struct {
	cfg  Config
	self string
	keys carrierKeys
	poke chan struct{}

	act   sync.Mutex           // serialises the steps that sign, record and publish
	marks *marks               // guarded by act
	retry map[string]time.Time // guarded by act; steps that failed, and when to try them again

	mu             sync.Mutex
	pos            Position                            // guarded by mu
	roles          map[key]*role                       // guarded by mu
	kems           map[string]*succession.KEMStatement // guarded by mu; each node's latest verified statement
	pending        []Carried                           // guarded by mu; documents whose signer is not known yet
	holders        map[string]map[string]string        // guarded by mu; tenant → chartered role → holder now ("" for none)
	charterHolders map[string][]key                    // guarded by mu; tenant + "\n" + principal → roles whose charter names them holder
	validUntil     time.Time                           // guarded by mu; when the last evaluation stops being right
}

// key names a role: a tenant's role name.
type key struct{ tenant, name string }

func (k key) String() string { return k.tenant + "/" + k.name }

// role is what the keeper holds of one role.
type role struct {
	key
	charters map[string][]byte                 // verified charters, by charter hash
	events   map[string]succession.SignedEvent // verified events, by event hash
	failed   map[string]succession.Rejection   // documents whose signature does not verify, by hash
	letters  map[string]*succession.Letter     // by letter hash; verified against the charter when used
	shares   map[string][]byte                 // released shares addressed to this node, by SHA-256 of their bytes

	charter    *succession.Charter    // in force at the last evaluation, nil when none
	charterRej []succession.Rejection // the charters not in force, and why
	newCharter bool                   // a charter arrived since the charter in force was chosen
	state      succession.RoleState
	seen       time.Time // when this node last saw the charter's holder active
	published  time.Time // when this node last published a presence for the role
}

// New opens the keeper's marks in cfg.Dir and reads what the carrier holds. Run
// starts its loop.
func New(cfg Config) (*Keeper, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	m, err := openMarks(cfg.Dir)
	if err != nil {
		return nil, err
	}
	k := &Keeper{cfg: cfg, self: cfg.Identity.ID(), keys: carrierKeys{cfg.Carrier}, poke: make(chan struct{}, 1),
		marks: m, retry: map[string]time.Time{}, roles: map[key]*role{}, kems: map[string]*succession.KEMStatement{}}
	k.mu.Lock()
	k.ingestLocked()
	k.evaluateLocked(k.now())
	k.mu.Unlock()
	return k, nil
}

func (k *Keeper) now() time.Time { return k.cfg.Now() }

// Poke makes the loop look again at once (a new document, a holder seen).
func (k *Keeper) Poke() {
	select {
	case k.poke <- struct{}{}:
	default:
	}
}

// carrierKeys is the carrier as succession.Keys.
type carrierKeys struct{ c Carrier }

func (c carrierKeys) NodeKey(node string) (identity.PublicKey, bool) { return c.c.NodeKey(node) }

// ingestLocked reads the documents the carrier holds beyond the keeper's position, and
// those still waiting for their signer to become known.
func (k *Keeper) ingestLocked() {
	docs, pos := k.cfg.Carrier.Since(k.pos)
	k.pos = pos
	waiting := k.pending
	k.pending = nil
	for _, c := range append(waiting, docs...) {
		if k.routeLocked(c) && len(k.pending) < MaxPendingDocs {
			k.pending = append(k.pending, c)
		}
	}
}

// roleLocked returns the role (tenant, name), made on first use; nil past MaxRoles.
func (k *Keeper) roleLocked(tenant, name string) *role {
	kk := key{tenant, name}
	if r := k.roles[kk]; r != nil {
		return r
	}
	if len(k.roles) >= MaxRoles {
		k.cfg.Log.Warn("roles: too many roles; documents for more are not counted", "limit", MaxRoles, "role", kk.String())
		return nil
	}
	r := &role{key: kk, charters: map[string][]byte{}, events: map[string]succession.SignedEvent{},
		failed: map[string]succession.Rejection{}, letters: map[string]*succession.Letter{}, shares: map[string][]byte{}}
	k.roles[kk] = r
	return r
}

// routeLocked files one carried document under its role, verifying it; it reports
// whether the document must wait for its signer to become a known node.
func (k *Keeper) routeLocked(c Carried) (wait bool) {
	d, err := succession.ParseDocument(c.Doc)
	if err != nil {
		return false // the fleet checked its form: nothing here can parse it differently
	}
	switch d := d.(type) {
	case *succession.Charter:
		r := k.roleLocked(d.Tenant, d.Name)
		if r == nil || r.charters[d.Hash()] != nil {
			return false
		}
		if _, failed := r.failed[d.Hash()]; failed {
			return false
		}
		err := d.Verify(k.keys)
		switch {
		case errors.Is(err, succession.ErrUnknownNode):
			return true
		case err != nil:
			r.failed[d.Hash()] = succession.Rejection{Event: d.Hash(), Kind: "charter", Node: d.Node, Reason: err.Error()}
		default:
			r.charters[d.Hash()], r.newCharter = d.Bytes(), true
		}
	case succession.Event:
		tenant, name := eventScope(d)
		r := k.roleLocked(tenant, name)
		if r == nil {
			return false
		}
		if _, ok := r.events[d.Hash()]; ok {
			return false
		}
		if _, failed := r.failed[d.Hash()]; failed {
			return false
		}
		se, err := succession.VerifyEvent(d.Bytes(), k.keys)
		switch {
		case errors.Is(err, succession.ErrUnknownNode):
			return true
		case err != nil:
			r.failed[d.Hash()] = succession.Rejection{Event: d.Hash(), Kind: d.Kind(), Node: d.Signer(), Reason: err.Error()}
		default:
			r.events[d.Hash()] = se
			if p, ok := d.(*succession.Presence); ok && p.Node == k.self {
				r.published = maxTime(r.published, eventTime(p))
			}
		}
	case *succession.Letter:
		if r := k.roleLocked(d.Tenant, d.Role); r != nil {
			r.letters[d.Hash()] = d // verified against the charter in force when it is used
		}
	case *succession.ReleasedShare:
		if d.To != k.self {
			return false // sealed to another node: only it can open it
		}
		if r := k.roleLocked(d.Tenant, d.Role); r != nil {
			r.shares[oar.DigestOf("", d.Bytes()).SHA256] = d.Bytes() // verified when the letter is opened
		}
	case *succession.KEMStatement:
		if _, ok := k.keys.NodeKey(d.Node); !ok {
			return true
		}
		if d.Verify(k.keys) != nil {
			return false
		}
		if old := k.kems[d.Node]; old == nil || old.Time < d.Time || old.Time == d.Time && string(old.Bytes()) < string(d.Bytes()) {
			k.kems[d.Node] = d
		}
	}
	return false
}

// eventScope is the tenant and role an event is for.
func eventScope(e succession.Event) (tenant, name string) {
	switch e := e.(type) {
	case *succession.Presence:
		return e.Tenant, e.Role
	case *succession.Suspicion:
		return e.Tenant, e.Role
	case *succession.Refutation:
		return e.Tenant, e.Role
	case *succession.Acceptance:
		return e.Tenant, e.Role
	case *succession.Removal:
		return e.Tenant, e.Role
	}
	return "", ""
}

// evaluateLocked computes every role's state at now, and the holders policy sees.
func (k *Keeper) evaluateLocked(now time.Time) {
	next := now.Add(idleWake)
	holders := map[string]map[string]string{}
	chHolders := map[string][]key{}
	for _, r := range k.roles {
		if r.newCharter { // each charter is verified on arrival: choose again only when one arrives
			c, rej, err := succession.CurrentCharter(r.tenant, r.name, slices.Collect(maps.Values(r.charters)), k.keys)
			if err != nil {
				k.cfg.Log.Error("roles: charter in force", "role", r.String(), "err", err)
				continue
			}
			r.charter, r.charterRej, r.newCharter = c, rej, false
		}
		c := r.charter
		if c == nil {
			continue
		}
		st, err := succession.State(c, slices.Collect(maps.Values(r.events)), now)
		if err != nil {
			k.cfg.Log.Error("roles: state", "role", r.String(), "err", err)
			continue
		}
		st.Rejected = append(st.Rejected, r.charterRej...)
		for _, f := range r.failed {
			st.Rejected = append(st.Rejected, f)
		}
		slices.SortFunc(st.Rejected, func(a, b succession.Rejection) int { return strings.Compare(a.Event, b.Event) })
		r.state = st
		if holders[r.tenant] == nil {
			holders[r.tenant] = map[string]string{}
		}
		holders[r.tenant][r.name] = st.Holder
		hk := r.tenant + "\n" + c.Holder
		chHolders[hk] = append(chHolders[hk], r.key)
		if !st.NextChange.IsZero() && st.NextChange.Before(next) {
			next = st.NextChange
		}
	}
	k.holders, k.charterHolders, k.validUntil = holders, chHolders, next
}

// freshLocked evaluates again if the last evaluation's state may have changed since.
func (k *Keeper) freshLocked(now time.Time) {
	if !now.Before(k.validUntil) {
		k.evaluateLocked(now)
	}
}

// Overlay returns pr with its roles as the fleet's records say: every role chartered
// in pr's tenant is removed from the roles the principal store gave it, and those it
// holds now are added. pr itself is not changed.
func (k *Keeper) Overlay(pr *policy.Principal) *policy.Principal {
	k.mu.Lock()
	k.freshLocked(k.now())
	hs := k.holders[pr.Tenant]
	var held []string
	for name, h := range hs {
		if h == pr.ID {
			held = append(held, name)
		}
	}
	k.mu.Unlock()
	if len(hs) == 0 {
		return pr
	}
	out := *pr
	out.Roles = nil
	for _, r := range pr.Roles {
		if _, chartered := hs[r]; !chartered {
			out.Roles = append(out.Roles, r)
		}
	}
	slices.Sort(held)
	out.Roles = append(out.Roles, held...)
	return &out
}

// Active notes that pr authenticated to this node now: if the charter of a role names
// it holder, that is presence, which the loop publishes when it is due. It does not
// block.
func (k *Keeper) Active(pr *policy.Principal) {
	now := k.now().Truncate(time.Second)
	poke := false
	k.mu.Lock()
	for _, kk := range k.charterHolders[pr.Tenant+"\n"+pr.ID] {
		r := k.roles[kk]
		if r == nil || r.charter == nil || !now.After(r.seen) {
			continue
		}
		r.seen = now
		if succession.PresenceDue(r.charter, r.state, r.seen, r.published, now) {
			poke = true
		}
	}
	k.mu.Unlock()
	if poke {
		k.Poke()
	}
}

// Facts are a role's facts for policy (a Sios::Role); a role with no charter in force
// has empty facts (the one that may be defined).
func (k *Keeper) Facts(tenant, name string) policy.RoleFacts {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.freshLocked(k.now())
	r := k.roles[key{tenant, name}]
	if r == nil || r.charter == nil {
		return policy.RoleFacts{}
	}
	return factsOf(r.charter, r.state)
}

func factsOf(c *succession.Charter, st succession.RoleState) policy.RoleFacts {
	f := policy.RoleFacts{State: st.State, Holder: st.Holder, CharterHolder: c.Holder,
		Successors: slices.Clone(c.Successors), Admins: slices.Clone(c.Admins)}
	if st.Offer != nil && st.Holder == "" {
		f.Offered = st.Offer.Successor
	}
	return f
}

// States returns the state of every role with a charter in force, of one tenant ("":
// every tenant), ordered by tenant and name.
func (k *Keeper) States(tenant string) []succession.RoleState {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.freshLocked(k.now())
	out := []succession.RoleState{}
	for _, r := range k.roles {
		if r.charter != nil && (tenant == "" || r.tenant == tenant) {
			out = append(out, k.viewLocked(r))
		}
	}
	slices.SortFunc(out, func(a, b succession.RoleState) int {
		return cmp.Or(strings.Compare(a.Tenant, b.Tenant), strings.Compare(a.Name, b.Name))
	})
	return out
}

// State returns one role's state.
func (k *Keeper) State(tenant, name string) (succession.RoleState, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.freshLocked(k.now())
	r := k.roles[key{tenant, name}]
	if r == nil || r.charter == nil {
		return succession.RoleState{}, false
	}
	return k.viewLocked(r), true
}

// Tenants returns the tenants that have a role named name.
func (k *Keeper) Tenants(name string) []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []string
	for kk, r := range k.roles {
		if kk.name == name && r.charter != nil {
			out = append(out, kk.tenant)
		}
	}
	slices.Sort(out)
	return out
}

// viewLocked is a role's state as it is shown: a copy, with the events still waiting
// for their signer reported.
func (k *Keeper) viewLocked(r *role) succession.RoleState {
	st := r.state
	st.Rejected = slices.Clone(st.Rejected)
	for _, c := range k.pending {
		if e, err := succession.ParseEvent(c.Doc); err == nil {
			if t, n := eventScope(e); t == r.tenant && n == r.name {
				st.Rejected = append(st.Rejected, succession.Rejection{Event: e.Hash(), Kind: e.Kind(), Node: e.Signer(),
					Reason: fmt.Sprintf("signed by %s, not (yet) known as a node of this institution: not counted", e.Signer())})
			}
		}
	}
	return st
}

// kemKeys is a snapshot of the nodes' verified KEM keys.
func (k *Keeper) kemKeysLocked() succession.KEMMap {
	m := succession.KEMMap{}
	for node, s := range k.kems {
		m[node] = s.Public()
	}
	return m
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
