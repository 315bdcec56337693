package roles

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/sios-project/sios/fleet"
	"github.com/sios-project/sios/oar"
	"github.com/sios-project/sios/succession"
)

// Run is the keeper's loop: it reads what the fleet carries, evaluates every role and
// takes the steps that are due, whenever the fleet changes, a holder is seen, or the
// next step falls due. It returns when ctx is done.
func (k *Keeper) Run(ctx context.Context) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		changed := k.cfg.Carrier.Changed()
		wake := k.Step(ctx)
		t.Reset(min(max(time.Until(wake), 10*time.Millisecond), idleWake))
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-k.poke:
		case <-t.C:
		}
	}
}

// StateKEM publishes the node's KEM statement (node-kem/1) unless its feed already
// states this key. The node calls it once, when it opens.
func (k *Keeper) StateKEM() error {
	pub := k.cfg.KEM.Public().Bytes()
	k.mu.Lock()
	k.ingestLocked()
	s := k.kems[k.self]
	k.mu.Unlock()
	if s != nil && bytes.Equal(s.PublicKey, pub) {
		return nil
	}
	doc, err := succession.SignKEM(k.cfg.Identity.Key, k.self, k.cfg.KEM.Public(), k.now())
	if err != nil {
		return err
	}
	return k.publish(fleet.KindKEM, doc)
}

// publish carries doc and files it at once (the carrier will give it back; it counts
// once).
func (k *Keeper) publish(kind string, doc []byte) error {
	if err := k.cfg.Carrier.Publish(kind, doc); err != nil {
		return fmt.Errorf("publishing to the fleet: %w", err)
	}
	k.mu.Lock()
	k.routeLocked(Carried{Feed: k.self, Kind: kind, Doc: doc})
	k.evaluateLocked(k.now())
	k.mu.Unlock()
	return nil
}

// step is one thing the node does on its own initiative.
type step struct {
	id string // names the step for retrying
	do func(ctx context.Context) error
}

// Step reads, evaluates and takes every step that is due, and returns when it should
// look again. The loop calls it; tests call it with their own clock.
func (k *Keeper) Step(ctx context.Context) time.Time {
	k.act.Lock()
	defer k.act.Unlock()
	for range 16 {
		now := k.now()
		k.mu.Lock()
		k.ingestLocked()
		k.evaluateLocked(now)
		steps := k.planLocked(now)
		k.mu.Unlock()
		if len(steps) == 0 {
			k.mu.Lock()
			defer k.mu.Unlock()
			return k.wakeLocked(now)
		}
		for _, s := range steps {
			if err := s.do(ctx); err != nil {
				k.cfg.Log.Error("roles: step failed; trying again later", "step", s.id, "err", err)
				k.retry[s.id] = now.Add(retryWake)
			} else {
				delete(k.retry, s.id)
			}
		}
	}
	return k.now().Add(minWake)
}

// planLocked lists the steps due at now, but those that failed recently.
func (k *Keeper) planLocked(now time.Time) []step {
	var out []step
	add := func(id string, do func(context.Context) error) {
		if t, ok := k.retry[id]; ok && now.Before(t) {
			return
		}
		out = append(out, step{id, do})
	}
	for _, r := range k.sortedRolesLocked() {
		c, st := r.charter, r.state
		if c == nil {
			continue
		}
		kk := r.key
		for _, rej := range st.Rejected {
			if k.marks.marked(markReject, rej.Event) || !k.permanentLocked(r, rej, now) {
				continue
			}
			rej := rej
			add("reject "+rej.Event, func(ctx context.Context) error { return k.recordReject(ctx, kk, rej) })
		}
		if st.State == succession.StateHandedOver && !k.marks.marked(markHandover, st.CertificateHash) {
			st, c := st, c
			add("handover "+st.CertificateHash, func(ctx context.Context) error { return k.recordHandover(ctx, kk, c, st) })
		}
		for _, h := range st.History {
			id := fmt.Sprintf("%s/%d", h.Ref, h.Time.Unix())
			if h.Action == succession.StepCascade && !k.marks.marked(markCascade, id) {
				h, c := h, c
				add("cascade "+id, func(ctx context.Context) error { return k.recordCascade(ctx, kk, c, h, id) })
			}
		}
		observer := slices.Contains(c.Observers, k.self)
		for _, l := range r.letters {
			if l.Charter != c.Hash() || !observer || k.marks.marked(markChecked, l.Hash()) {
				continue
			}
			l, c := l, c
			add("check "+l.Hash(), func(ctx context.Context) error { return k.checkLetter(ctx, kk, c, l) })
		}
		if r.seen.Unix() > st.LastPresence.Unix() && succession.PresenceDue(c, st, r.seen, r.published, now) {
			seen, c := r.seen, c
			add("presence "+kk.String(), func(ctx context.Context) error {
				_, _, err := k.presence(ctx, kk, c, seen, nodeActor, nil, "activity")
				return err
			})
		}
		if since, due := succession.SuspicionDue(c, st, k.self, r.seen, now); due {
			c := c
			add("suspect "+kk.String(), func(ctx context.Context) error { return k.suspect(ctx, kk, c, since) })
		}
		if observer && st.State == succession.StateHandedOver && st.Holder != "" && st.HolderNode != "" {
			for _, l := range r.letters {
				if l.Charter == c.Hash() && !k.marks.marked(markRelease, l.Hash()) {
					l, c, st := l, c, st
					add("release "+l.Hash(), func(ctx context.Context) error { return k.release(ctx, kk, c, st, l) })
				}
			}
		}
	}
	return out
}

func (k *Keeper) sortedRolesLocked() []*role {
	out := make([]*role, 0, len(k.roles))
	for _, r := range k.roles {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b *role) int { return strings.Compare(a.String(), b.String()) })
	return out
}

// permanentLocked says whether a rejection will hold whatever else arrives: a
// signature that does not verify, a charter that conflicts, or an event that breaks
// the charter it cites (signed by a node that is not an observer, by an admin who is
// not one, too early, naming another holder). Events of another charter, events signed
// in the future and acceptances (whose window depends on evidence still to come) are
// only reported.
func (k *Keeper) permanentLocked(r *role, rej succession.Rejection, now time.Time) bool {
	if _, forged := r.failed[rej.Event]; forged || rej.Kind == "charter" {
		return true
	}
	se, ok := r.events[rej.Event]
	if !ok {
		return false
	}
	e := se.Event()
	if e.Kind() == succession.KindAcceptance || eventTime(e).After(now) {
		return false
	}
	if c := eventCharter(e); c != "" && c != r.charter.Hash() {
		return false
	}
	return true
}

// eventTime is when an event was signed.
func eventTime(e succession.Event) time.Time {
	var s string
	switch e := e.(type) {
	case *succession.Presence:
		s = e.Time
	case *succession.Suspicion:
		s = e.Time
	case *succession.Refutation:
		s = e.Time
	case *succession.Acceptance:
		s = e.Time
	case *succession.Removal:
		s = e.Time
	}
	t, _ := time.Parse(time.RFC3339, s) // ParseEvent checked the spelling
	return t
}

// eventCharter is the charter hash an event cites ("" for a presence, which cites none).
func eventCharter(e succession.Event) string {
	switch e := e.(type) {
	case *succession.Suspicion:
		return e.Charter
	case *succession.Refutation:
		return e.Charter
	case *succession.Acceptance:
		return e.Charter
	case *succession.Removal:
		return e.Charter
	}
	return ""
}

// wakeLocked is when the next step falls due with no new document: the end of a wait
// or an offer (NextChange), the next suspicion this observer would sign, the next
// presence it may publish, a step to try again.
func (k *Keeper) wakeLocked(now time.Time) time.Time {
	next := k.validUntil
	at := func(unix int64) {
		if t := time.Unix(unix, 0).Add(5 * time.Millisecond); t.Before(next) {
			next = t
		}
	}
	for _, r := range k.roles {
		c, st := r.charter, r.state
		if c == nil || st.State == succession.StateHandedOver {
			continue
		}
		sa := int64(c.SuspectAfter)
		if slices.Contains(c.Observers, k.self) && !slices.ContainsFunc(st.Suspicions, func(s succession.Suspected) bool { return s.Observer == k.self }) {
			ct, _ := time.Parse(time.RFC3339, c.Time)
			at(max(st.LastPresence.Unix(), ct.Unix(), r.seen.Unix()) + sa)
		}
		if r.seen.Unix() > st.LastPresence.Unix() && !r.published.IsZero() {
			at(r.published.Unix() + max(sa/2, 1))
		}
	}
	for _, t := range k.retry {
		if t.Before(next) {
			next = t
		}
	}
	return next
}

// The steps.

func (k *Keeper) suspect(ctx context.Context, kk key, c *succession.Charter, since time.Time) error {
	now := k.now()
	doc, err := succession.SignSuspicion(k.cfg.Identity.Key, succession.Suspicion{Tenant: kk.tenant, Role: kk.name, Charter: c.Hash(),
		Holder: c.Holder, Node: k.self, Since: succession.FormatTime(since), Time: succession.FormatTime(now)})
	if err != nil {
		return err
	}
	if _, err := k.record(ctx, entry{role: kk, action: oar.ActionRoleSuspect, actor: nodeActor,
		detail:  map[string]any{"charter": c.Hash(), "holder": c.Holder, "since": succession.FormatTime(since), "event": succession.EventHash(doc)},
		outputs: docDigest("suspicion", doc)}); err != nil {
		return err
	}
	return k.publish(fleet.KindRole, doc)
}

// presence signs and publishes a presence of the charter's holder seen at seen:
// recorded as role.presence by actor (the node, for activity it saw; the holder, for a
// check-in) under decision.
func (k *Keeper) presence(ctx context.Context, kk key, c *succession.Charter, seen time.Time, actor oar.Actor, decision *oar.Decision, cause string) (*oar.Receipt, string, error) {
	now := k.now()
	doc, err := succession.SignPresence(k.cfg.Identity.Key, succession.Presence{Tenant: kk.tenant, Role: kk.name, Holder: c.Holder,
		Node: k.self, Seen: succession.FormatTime(seen), Time: succession.FormatTime(now)})
	if err != nil {
		return nil, "", err
	}
	rc, err := k.record(ctx, entry{role: kk, action: oar.ActionRolePresence, actor: actor, decision: decision,
		detail:  map[string]any{"holder": c.Holder, "seen": succession.FormatTime(seen), "cause": cause, "event": succession.EventHash(doc)},
		outputs: docDigest("presence", doc)})
	if err != nil {
		return nil, "", err
	}
	if err := k.publish(fleet.KindRole, doc); err != nil {
		return nil, "", err
	}
	return rc, succession.EventHash(doc), nil
}

func (k *Keeper) recordHandover(ctx context.Context, kk key, c *succession.Charter, st succession.RoleState) error {
	cert, err := succession.ParseCertificate(st.Certificate)
	if err != nil {
		return err
	}
	var hashes []string
	var parties [][]byte
	size := 0
	for _, e := range cert.Events() {
		hashes = append(hashes, e.Hash())
		size += len(e.Bytes())
		parties = append(parties, e.Bytes())
	}
	if size > MaxEvidenceParties || len(parties) > oar.MaxParties {
		parties = nil // named by their hashes and the certificate's digest alone
	}
	if _, err := k.record(ctx, entry{role: kk, action: oar.ActionRoleHandover, actor: nodeActor,
		detail: map[string]any{"certificate": st.CertificateHash, "basis": st.Basis, "charter": c.Hash(), "from": c.Holder,
			"to": c.Successors[0], "effective": succession.FormatTime(st.EffectiveAt), "evidence": hashes},
		outputs: docDigest("certificate", st.Certificate), parties: parties}); err != nil {
		return err
	}
	return k.marks.mark(markHandover, st.CertificateHash)
}

func (k *Keeper) recordCascade(ctx context.Context, kk key, c *succession.Charter, h succession.Step, id string) error {
	from := c.Successors[len(c.Successors)-1]
	if i := slices.Index(c.Successors, h.Principal); i > 0 {
		from = c.Successors[i-1]
	}
	if _, err := k.record(ctx, entry{role: kk, action: oar.ActionRoleCascade, actor: nodeActor,
		detail: map[string]any{"certificate": h.Ref, "charter": c.Hash(), "from": from, "to": h.Principal, "at": succession.FormatTime(h.Time)}}); err != nil {
		return err
	}
	return k.marks.mark(markCascade, id)
}

func (k *Keeper) recordReject(ctx context.Context, kk key, rej succession.Rejection) error {
	if _, err := k.record(ctx, entry{role: kk, action: oar.ActionRoleReject, actor: nodeActor,
		decision: &oar.Decision{Effect: "deny", Policies: []string{"succession"}},
		detail:   map[string]any{"event": rej.Event, "kind": rej.Kind, "node": rej.Node, "reason": oar.Bounded(rej.Reason, oar.MaxOutsideValue)}}); err != nil {
		return err
	}
	return k.marks.mark(markReject, rej.Event)
}

// checkLetter opens this observer's share of a letter on receipt, so that a letter it
// could not release is known (and recorded) at once.
func (k *Keeper) checkLetter(ctx context.Context, kk key, c *succession.Charter, l *succession.Letter) error {
	err := l.Verify(c, k.keys)
	if errors.Is(err, succession.ErrUnknownNode) {
		return nil // its signer is not known yet: checked when it is
	}
	if err == nil {
		err = l.CheckShare(k.cfg.KEM, k.self)
	}
	if err != nil {
		if rerr := k.recordReject(ctx, kk, succession.Rejection{Event: l.Hash(), Kind: "letter", Node: l.Node, Reason: err.Error()}); rerr != nil {
			return rerr
		}
	}
	return k.marks.mark(markChecked, l.Hash())
}

// release seals this observer's share of a letter to the node of the successor who
// accepted.
func (k *Keeper) release(ctx context.Context, kk key, c *succession.Charter, st succession.RoleState, l *succession.Letter) error {
	if err := l.Verify(c, k.keys); err != nil {
		return err
	}
	k.mu.Lock()
	kems := k.kemKeysLocked()
	k.mu.Unlock()
	doc, err := l.Release(st, k.cfg.KEM, k.cfg.Identity.Key, k.self, kems, k.now())
	if err != nil {
		return err
	}
	if _, err := k.record(ctx, entry{role: kk, action: oar.ActionRoleLetterRelease, actor: nodeActor,
		detail:  map[string]any{"letter": l.Hash(), "id": l.ID, "certificate": st.CertificateHash, "successor": st.Holder, "to": st.HolderNode},
		outputs: docDigest("share", doc)}); err != nil {
		return err
	}
	if err := k.publish(fleet.KindRole, doc); err != nil {
		return err
	}
	return k.marks.mark(markRelease, l.Hash())
}
