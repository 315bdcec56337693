package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/sios-project/sios/brain"
	"github.com/sios-project/sios/decision"
	"github.com/sios-project/sios/fleet"
	"github.com/sios-project/sios/oar"
	"github.com/sios-project/sios/policy"
)

// Reloaded says what a reload changed.
type Reloaded struct {
	PolicyDigest    string   `json:"policy_digest"`
	Policies        int      `json:"policies"`
	PoliciesAdded   []string `json:"policies_added"`
	PoliciesRemoved []string `json:"policies_removed"`
	Brains          int      `json:"brains"`
	BrainsAdded     []string `json:"brains_added"`
	BrainsRemoved   []string `json:"brains_removed"`
	BrainsChanged   []string `json:"brains_changed"`
	Panels          int      `json:"panels"`
	PanelsAdded     []string `json:"panels_added"`
	PanelsRemoved   []string `json:"panels_removed"`
	Roots           []string `json:"roots"`
	Evicted         []string `json:"evicted"`
}

// Reload re-reads the policies, the brains, the panels and the trust store from the
// data directory and puts them in force together, without a restart (SIGHUP): requests
// already past authorisation finish under what they were decided by; every decision
// after the swap sees the new set. What changes is recorded first (node.reload); if
// anything does not load — a policy with a syntax error, a brain file with an unknown
// field, a damaged root file — nothing changes, the error is recorded and returned, and
// the node goes on with what it had.
func (n *Node) Reload(ctx context.Context) (*Reloaded, error) {
	n.reloadMu.Lock()
	defer n.reloadMu.Unlock()
	res, apply, err := n.prepareReload()
	if err != nil {
		n.metrics.Reload(err)
		detail, _ := json.Marshal(map[string]string{"error": oar.Bounded(err.Error(), oar.MaxOutsideValue)})
		if aerr := n.audit(ctx, &oar.Record{Actor: oar.Actor{ID: "operator"}, Action: oar.ActionNodeReload, Resource: n.ID(),
			Decision: &oar.Decision{Effect: "deny", Policies: []string{"reload-failed"}}, Detail: detail}); aerr != nil {
			n.log.Error("audit reload failure", "err", aerr)
		}
		return nil, fmt.Errorf("reload: nothing changed: %w", err)
	}
	detail, _ := json.Marshal(res)
	if err := n.audit(ctx, &oar.Record{Actor: oar.Actor{ID: "operator"}, Action: oar.ActionNodeReload, Resource: n.ID(),
		Decision: &oar.Decision{Effect: "allow", Policies: []string{"operator"}}, Detail: detail}); err != nil {
		n.metrics.Reload(err)
		return nil, fmt.Errorf("reload: the record could not be written, nothing changed: %w", err)
	}
	res.Evicted = apply()
	n.metrics.Reload(nil)
	return res, nil
}

// prepareReload loads everything and works out what would change; apply puts it in
// force and returns the peers evicted.
func (n *Node) prepareReload() (*Reloaded, func() []string, error) {
	eng, perr := policy.Load(n.dataDir)
	cat, berr := brain.Load(n.dataDir)
	trust, roots, terr := fleet.LoadTrust(n.dataDir, n.id.Cert)
	if err := errors.Join(perr, berr, terr); err != nil {
		return nil, nil, err
	}
	// Panels are checked against the brains that will be in force with them.
	panels, err := decision.LoadPanels(n.dataDir, cat)
	if err != nil {
		return nil, nil, err
	}
	old := n.policy.Engine()
	res := &Reloaded{PolicyDigest: eng.Digest(), Policies: eng.Len(), Brains: len(cat.All()), Roots: []string{}}
	res.PoliciesAdded, res.PoliciesRemoved = difference(eng.IDs(), old.IDs()), difference(old.IDs(), eng.IDs())
	res.BrainsAdded, res.BrainsRemoved, res.BrainsChanged = brainChanges(n.brains.Catalogue(), cat)
	res.Panels = len(panels.IDs())
	res.PanelsAdded, res.PanelsRemoved = difference(panels.IDs(), n.panels.IDs()), difference(n.panels.IDs(), panels.IDs())
	for _, r := range roots {
		res.Roots = append(res.Roots, r.RootID)
	}
	res.Evicted = n.fleetLog.Untrusted(trust) // as known now; apply reports what went
	brainsChanged := len(res.BrainsAdded)+len(res.BrainsRemoved)+len(res.BrainsChanged) > 0
	apply := func() []string {
		n.policy.Replace(eng)
		n.brains.Replace(cat)
		n.panels.Replace(panels)
		gone := n.setTrust(trust)
		if brainsChanged {
			n.publishBrains()
		}
		return gone
	}
	return res, apply, nil
}

// publishBrains states the brains now in force in the node's federation feed, so that
// peers route to them (and no longer to removed ones).
func (n *Node) publishBrains() {
	body := fleet.BrainsBody{Brains: []fleet.Brain{}}
	for _, b := range n.brains.All() {
		body.Brains = append(body.Brains, fleet.Brain{ID: b.ID, Kind: b.Kind, Classification: b.Classification})
	}
	var err error
	if f := n.joined.Load(); f != nil {
		err = f.Publish(fleet.KindBrains, &body)
	} else {
		_, err = n.feed.Publish(fleet.KindBrains, &body, time.Now())
	}
	if err != nil {
		n.log.Error("publish the reloaded brains to the fleet", "err", err)
	}
}

// difference is the ids in a that are not in b, sorted.
func difference(a, b []string) []string {
	out := []string{}
	for _, id := range a {
		if !slices.Contains(b, id) {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// brainChanges compares two catalogues by brain id and definition.
func brainChanges(old, cur *brain.Catalogue) (added, removed, changed []string) {
	added, removed, changed = []string{}, []string{}, []string{}
	for _, b := range cur.All() {
		o, ok := old.Get(b.ID)
		if !ok {
			added = append(added, b.ID)
			continue
		}
		x, _ := json.Marshal(o)
		y, _ := json.Marshal(b)
		if !bytes.Equal(x, y) {
			changed = append(changed, b.ID)
		}
	}
	for _, b := range old.All() {
		if _, ok := cur.Get(b.ID); !ok {
			removed = append(removed, b.ID)
		}
	}
	return added, removed, changed
}
