package roles

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/sios-project/sios/fleet"
	"github.com/sios-project/sios/oar"
	"github.com/sios-project/sios/succession"
)

// What principals (through the API, authorised by policy) and the operator (through
// the admin socket) ask the node to sign on their behalf. The caller has decided that
// the act may happen and passes the decision in; the keeper checks the protocol's own
// rules (only the charter's holder refutes, only the successor offered accepts, …),
// records the act and only then publishes it.

// Errors the callers branch on. Each is wrapped with a message for the person acting.
var (
	// ErrUnknownRole: no charter is in force for the role.
	ErrUnknownRole = errors.New("no such role")
	// ErrNotNow: the protocol does not allow the act, by this principal or in the
	// role's state now.
	ErrNotNow = errors.New("not allowed by the role's charter and state")
	// ErrInvalid: the request itself is malformed (a charter that does not validate).
	ErrInvalid = errors.New("invalid role request")
	// ErrUnrecorded: the act's record could not be written, so it was not done.
	ErrUnrecorded = errors.New("the act could not be recorded, so it was not done")
)

// refusalError is an act refused for kind: its text is the message alone.
type refusalError struct {
	kind error
	msg  string
}

func (e *refusalError) Error() string { return e.msg }
func (e *refusalError) Unwrap() error { return e.kind }

func refusal(kind error, format string, a ...any) error {
	return &refusalError{kind: kind, msg: fmt.Sprintf(format, a...)}
}

// By is who acts and on what authority: the record's actor and decision, and the
// principal id the act is made for (a holder, a successor, an admin).
type By struct {
	Actor     oar.Actor
	Decision  *oar.Decision
	Principal string
}

// Spec is a role's definition, as an admin gives it.
type Spec struct {
	Tenant       string   `json:"tenant"`
	Name         string   `json:"name"`
	Holder       string   `json:"holder"`
	Successors   []string `json:"successors"`
	Observers    []string `json:"observers"`
	K            int      `json:"k"`
	Admins       []string `json:"admins"`
	SuspectAfter uint64   `json:"suspect_after"` // seconds
	Wait         uint64   `json:"wait"`          // seconds
	AcceptWithin uint64   `json:"accept_within"` // seconds
}

// Outcome is what an act did.
type Outcome struct {
	State succession.RoleState `json:"state"`
	// Event is the hash of the document the node signed and published ("" when none
	// was: a check-in with no presence due).
	Event     string       `json:"event,omitempty"`
	Published bool         `json:"published"`
	Receipt   *oar.Receipt `json:"receipt,omitempty"`
	// Letter is an opened letter's plaintext (OpenLetter only). It is never written.
	Letter []byte `json:"-"`
}

// current returns a role's charter in force and state at now.
func (k *Keeper) current(tenant, name string) (*succession.Charter, succession.RoleState, *role, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.ingestLocked()
	k.evaluateLocked(k.now())
	r := k.roles[key{tenant, name}]
	if r == nil || r.charter == nil {
		return nil, succession.RoleState{}, nil, refusal(ErrUnknownRole, "tenant %s has no role %q", tenant, name)
	}
	return r.charter, r.state, r, nil
}

// recordAndPublish records e, then publishes doc, and returns the role's state after.
func (k *Keeper) recordAndPublish(ctx context.Context, e entry, doc []byte) (*Outcome, error) {
	rc, err := k.record(ctx, e)
	if err != nil {
		k.cfg.Log.Error("roles: recording", "action", e.action, "err", err)
		return nil, ErrUnrecorded
	}
	if err := k.publish(fleet.KindRole, doc); err != nil {
		k.cfg.Log.Error("roles: publishing", "action", e.action, "err", err)
		return nil, fmt.Errorf("%s was recorded but could not be published: %v", e.action, err)
	}
	k.Poke()
	st, _ := k.State(e.role.tenant, e.role.name)
	return &Outcome{State: st, Event: succession.EventHash(doc), Published: true, Receipt: rc}, nil
}

// Define signs a charter for spec (a new role, or the next version of one in force),
// records it and publishes it to the institution's nodes.
func (k *Keeper) Define(ctx context.Context, by By, spec Spec) (*Outcome, error) {
	k.act.Lock()
	defer k.act.Unlock()
	for _, o := range spec.Observers {
		if _, ok := k.keys.NodeKey(o); !ok {
			return nil, refusal(ErrInvalid, "observer %s is not a node of this institution that this node knows ('sios fleet peers' lists them)", o)
		}
	}
	c := succession.Charter{Tenant: spec.Tenant, Name: spec.Name, Holder: spec.Holder, Successors: spec.Successors,
		Observers: spec.Observers, K: spec.K, Admins: spec.Admins, SuspectAfter: spec.SuspectAfter, Wait: spec.Wait,
		AcceptWithin: spec.AcceptWithin, Author: by.Principal, Node: k.self, Time: succession.FormatTime(k.now())}
	if cur, _, _, err := k.current(spec.Tenant, spec.Name); err == nil {
		c.Seq, c.Prev = cur.Seq+1, cur.Hash()
	}
	doc, err := succession.SignCharter(k.cfg.Identity.Key, c)
	if err != nil {
		return nil, refusal(ErrInvalid, "%v", err)
	}
	p, err := succession.ParseCharter(doc)
	if err != nil {
		return nil, err
	}
	out, err := k.recordAndPublish(ctx, entry{role: key{spec.Tenant, spec.Name}, action: oar.ActionRoleDefine, actor: by.Actor, decision: by.Decision,
		detail: map[string]any{"charter": p.Hash(), "seq": p.Seq, "prev": p.Prev, "holder": p.Holder, "successors": p.Successors,
			"observers": p.Observers, "k": p.K, "admins": p.Admins, "suspect_after": p.SuspectAfter, "wait": p.Wait, "accept_within": p.AcceptWithin},
		outputs: docDigest("charter", doc)}, doc)
	if out != nil {
		out.Event = p.Hash() // a charter is named by its charter hash
	}
	return out, err
}

// Checkin is the holder's explicit presence: published at once when the fleet does
// not know it yet (succession.PresenceDue), and otherwise noted (published when due).
func (k *Keeper) Checkin(ctx context.Context, by By, tenant, name string) (*Outcome, error) {
	k.act.Lock()
	defer k.act.Unlock()
	c, st, r, err := k.current(tenant, name)
	if err != nil {
		return nil, err
	}
	if by.Principal != c.Holder {
		return nil, refusal(ErrNotNow, "%s is not the holder of role %s that the charter names (%s)", by.Principal, name, c.Holder)
	}
	if st.State == succession.StateHandedOver {
		return nil, refusal(ErrNotNow, "role %s was handed over at %s; a check-in no longer counts", name, succession.FormatTime(st.EffectiveAt))
	}
	now := k.now().Truncate(1e9)
	k.mu.Lock()
	if now.After(r.seen) {
		r.seen = now
	}
	due := succession.PresenceDue(c, st, now, r.published, now)
	k.mu.Unlock()
	kk := key{tenant, name}
	if due {
		rc, ev, err := k.presence(ctx, kk, c, now, by.Actor, by.Decision, "checkin")
		if err != nil {
			k.cfg.Log.Error("roles: check-in", "err", err)
			return nil, ErrUnrecorded
		}
		st, _ := k.State(tenant, name)
		return &Outcome{State: st, Event: ev, Published: true, Receipt: rc}, nil
	}
	rc, err := k.record(ctx, entry{role: kk, action: oar.ActionRoleCheckin, actor: by.Actor, decision: by.Decision,
		detail: map[string]any{"holder": c.Holder, "seen": succession.FormatTime(now), "last_presence": succession.FormatTime(st.LastPresence)}})
	if err != nil {
		return nil, ErrUnrecorded
	}
	k.Poke()
	st, _ = k.State(tenant, name)
	return &Outcome{State: st, Receipt: rc}, nil
}

// Refute is the holder's refusal of a handover: it cancels every suspicion made
// before it, on every node that receives it before the handover takes effect.
func (k *Keeper) Refute(ctx context.Context, by By, tenant, name, reason string) (*Outcome, error) {
	k.act.Lock()
	defer k.act.Unlock()
	c, st, _, err := k.current(tenant, name)
	if err != nil {
		return nil, err
	}
	if by.Principal != c.Holder {
		return nil, refusal(ErrNotNow, "only the holder the charter names (%s) may refute, not %s", c.Holder, by.Principal)
	}
	if st.State == succession.StateHandedOver {
		return nil, refusal(ErrNotNow, "role %s was handed over at %s: too late to refute", name, succession.FormatTime(st.EffectiveAt))
	}
	doc, err := succession.SignRefutation(k.cfg.Identity.Key, succession.Refutation{Tenant: tenant, Role: name, Charter: c.Hash(),
		Holder: c.Holder, Node: k.self, Reason: reason, Time: succession.FormatTime(k.now())})
	if err != nil {
		return nil, refusal(ErrInvalid, "%v", err)
	}
	return k.recordAndPublish(ctx, entry{role: key{tenant, name}, action: oar.ActionRoleRefute, actor: by.Actor, decision: by.Decision,
		detail:  map[string]any{"charter": c.Hash(), "holder": c.Holder, "reason": reason, "state": st.State, "event": succession.EventHash(doc)},
		outputs: docDigest("refutation", doc)}, doc)
}

// Accept is a successor's acceptance of the role offered to them now, through this
// node: the node that will receive the letter's shares.
func (k *Keeper) Accept(ctx context.Context, by By, tenant, name string) (*Outcome, error) {
	k.act.Lock()
	defer k.act.Unlock()
	c, st, _, err := k.current(tenant, name)
	if err != nil {
		return nil, err
	}
	switch {
	case st.State != succession.StateHandedOver:
		return nil, refusal(ErrNotNow, "role %s is %s: it is offered to a successor only after a handover", name, st.State)
	case st.Holder != "":
		return nil, refusal(ErrNotNow, "role %s was already accepted by %s", name, st.Holder)
	case st.Offer == nil:
		return nil, refusal(ErrNotNow, "role %s is offered to nobody now (no successor accepted in time: an admin must define a new charter)", name)
	case st.Offer.Successor != by.Principal:
		return nil, refusal(ErrNotNow, "role %s is offered to %s until %s, not to %s", name, st.Offer.Successor, succession.FormatTime(st.Offer.Until), by.Principal)
	}
	doc, err := succession.SignAcceptance(k.cfg.Identity.Key, succession.Acceptance{Tenant: tenant, Role: name, Charter: c.Hash(),
		Successor: by.Principal, Node: k.self, Time: succession.FormatTime(k.now())})
	if err != nil {
		return nil, refusal(ErrInvalid, "%v", err)
	}
	return k.recordAndPublish(ctx, entry{role: key{tenant, name}, action: oar.ActionRoleAccept, actor: by.Actor, decision: by.Decision,
		detail:  map[string]any{"charter": c.Hash(), "successor": by.Principal, "certificate": st.CertificateHash, "event": succession.EventHash(doc)},
		outputs: docDigest("acceptance", doc)}, doc)
}

// Remove is one admin's removal of the holder; k distinct admins' removals hand the
// role over at once.
func (k *Keeper) Remove(ctx context.Context, by By, tenant, name, reason string) (*Outcome, error) {
	k.act.Lock()
	defer k.act.Unlock()
	c, st, _, err := k.current(tenant, name)
	if err != nil {
		return nil, err
	}
	switch {
	case !slices.Contains(c.Admins, by.Principal):
		return nil, refusal(ErrNotNow, "%s is not one of role %s's admins (%s)", by.Principal, name, strings.Join(c.Admins, ", "))
	case st.State == succession.StateHandedOver:
		return nil, refusal(ErrNotNow, "role %s was already handed over at %s", name, succession.FormatTime(st.EffectiveAt))
	case slices.ContainsFunc(st.Removals, func(r succession.Removed) bool { return r.Admin == by.Principal }):
		return nil, refusal(ErrNotNow, "%s's removal of %s's holder is already counted (%d of the %d needed)", by.Principal, name, len(st.Removals), c.K)
	}
	doc, err := succession.SignRemoval(k.cfg.Identity.Key, succession.Removal{Tenant: tenant, Role: name, Charter: c.Hash(),
		Holder: c.Holder, Admin: by.Principal, Node: k.self, Reason: reason, Time: succession.FormatTime(k.now())})
	if err != nil {
		return nil, refusal(ErrInvalid, "%v", err)
	}
	return k.recordAndPublish(ctx, entry{role: key{tenant, name}, action: oar.ActionRoleRemove, actor: by.Actor, decision: by.Decision,
		detail:  map[string]any{"charter": c.Hash(), "holder": c.Holder, "admin": by.Principal, "reason": reason, "event": succession.EventHash(doc)},
		outputs: docDigest("removal", doc)}, doc)
}

// Deposit seals letter for whoever succeeds the holder: encrypted under a fresh key
// split k-of-n among the charter's observers, each share sealed to its observer's KEM
// key. The plaintext is never written.
func (k *Keeper) Deposit(ctx context.Context, by By, tenant, name string, letter []byte) (*Outcome, error) {
	k.act.Lock()
	defer k.act.Unlock()
	c, st, _, err := k.current(tenant, name)
	if err != nil {
		return nil, err
	}
	switch {
	case by.Principal != c.Holder:
		return nil, refusal(ErrNotNow, "only the holder the charter names (%s) may deposit the role's letter, not %s", c.Holder, by.Principal)
	case st.State == succession.StateHandedOver:
		return nil, refusal(ErrNotNow, "role %s was handed over at %s", name, succession.FormatTime(st.EffectiveAt))
	}
	k.mu.Lock()
	kems := k.kemKeysLocked()
	k.mu.Unlock()
	doc, err := succession.SealLetter(k.cfg.Identity.Key, k.self, c, by.Principal, letter, kems, k.now())
	if err != nil {
		return nil, refusal(ErrInvalid, "%v", err)
	}
	l, err := succession.ParseLetter(doc)
	if err != nil {
		return nil, err
	}
	out, err := k.recordAndPublish(ctx, entry{role: key{tenant, name}, action: oar.ActionRoleLetterDeposit, actor: by.Actor, decision: by.Decision,
		detail:  map[string]any{"charter": c.Hash(), "letter": l.Hash(), "id": l.ID, "size": len(letter), "k": l.K, "observers": c.Observers},
		outputs: docDigest("letter", doc)}, doc)
	if out != nil {
		out.Event = l.Hash()
	}
	return out, err
}

// OpenLetter opens the role's latest letter for the successor who holds the role,
// on the node they accepted through, from the shares the observers released to it.
// Its opening is recorded before it is returned.
func (k *Keeper) OpenLetter(ctx context.Context, by By, tenant, name string) (*Outcome, error) {
	k.act.Lock()
	defer k.act.Unlock()
	c, st, r, err := k.current(tenant, name)
	if err != nil {
		return nil, err
	}
	switch {
	case st.State != succession.StateHandedOver || st.Holder != by.Principal:
		return nil, refusal(ErrNotNow, "only the successor who accepted role %s after a handover may open its letter", name)
	case st.HolderNode != k.self:
		return nil, refusal(ErrNotNow, "%s accepted role %s through node %s: the letter's shares are sealed to that node, and only there can it be opened", by.Principal, name, st.HolderNode)
	}
	k.mu.Lock()
	var letters []*succession.Letter
	for _, l := range r.letters {
		if l.Charter == c.Hash() && l.Verify(c, k.keys) == nil {
			letters = append(letters, l)
		}
	}
	var shares [][]byte
	for _, s := range r.shares {
		shares = append(shares, s)
	}
	k.mu.Unlock()
	if len(letters) == 0 {
		return nil, refusal(ErrNotNow, "%s left no letter for role %s", c.Holder, name)
	}
	slices.SortFunc(letters, func(a, b *succession.Letter) int {
		return cmp.Or(strings.Compare(b.Time, a.Time), strings.Compare(a.Hash(), b.Hash()))
	})
	l := letters[0]
	slices.SortFunc(shares, func(a, b []byte) int { return strings.Compare(string(a), string(b)) })
	plain, err := l.Open(k.cfg.KEM, k.self, shares, k.keys)
	if err != nil {
		return nil, refusal(ErrNotNow, "%v", err)
	}
	rc, err := k.record(ctx, entry{role: key{tenant, name}, action: oar.ActionRoleLetterOpen, actor: by.Actor, decision: by.Decision,
		detail: map[string]any{"charter": c.Hash(), "letter": l.Hash(), "id": l.ID, "certificate": st.CertificateHash, "size": len(plain)}})
	if err != nil {
		k.cfg.Log.Error("roles: recording a letter's opening", "err", err)
		return nil, ErrUnrecorded
	}
	return &Outcome{State: st, Event: l.Hash(), Receipt: rc, Letter: plain}, nil
}
