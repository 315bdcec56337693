package node

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/sios-project/sios/fleet"
	"github.com/sios-project/sios/oar"
	"github.com/sios-project/sios/roles"
	"github.com/sios-project/sios/succession"
)

// RolesDir is where a node keeps what it has recorded of its chartered roles' derived
// steps (package roles).
func RolesDir(dataDir string) string { return filepath.Join(dataDir, "roles") }

// openRoles opens the node's KEM key (DATA/kem.key, made the first time), states it in
// the node's feed (once), opens its role keeper, and gives the pipeline the roles the
// fleet's records say principals hold.
func (n *Node) openRoles() error {
	kem, err := succession.OpenKEMKey(n.dataDir)
	if err != nil {
		return err
	}
	carrier := &roles.FleetCarrier{Node: n.id, Feed: n.feed, Log: n.fleetLog, Fleet: n.rolesFleet.Load}
	n.roles, err = roles.New(roles.Config{Identity: n.id, KEM: kem, Dir: RolesDir(n.dataDir), Carrier: carrier, Log: n.log,
		Audit: func(ctx context.Context, r *oar.Record) (*oar.Receipt, error) {
			rc, _, err := n.ledger.Append(ctx, r)
			return rc, err
		}})
	if err != nil {
		return err
	}
	if err := n.roles.StateKEM(); err != nil {
		return fmt.Errorf("stating the node's KEM key in its feed: %v", err)
	}
	n.pipeline.SetRoles(n.roles)
	return nil
}

// startRoles runs the keeper's loop, carrying documents through f (nil: the node runs
// alone), until the returned stop is called or ctx is done; stop waits for the loop.
func (n *Node) startRoles(ctx context.Context, f *fleet.Fleet) (stop func()) {
	n.rolesFleet.Store(f)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.roles.Run(ctx)
	}()
	return func() {
		cancel()
		<-done
		n.rolesFleet.Store(nil)
	}
}
