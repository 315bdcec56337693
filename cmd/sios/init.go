package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/ledger"
	"github.com/sios-project/sios/oar"
	"github.com/sios-project/sios/policy"
)

func runInit(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "init", "init [--name NAME] [--root ROOTKEYFILE] [--json]")
	name := fs.String("name", "", "node name (default: the host name)")
	root := fs.String("root", "", "enrol under the institution root key in this file (default: create a new root)")
	asJSON := fs.Bool("json", false, "print JSON")
	args, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(args) > 0 {
		return usageError("init takes no arguments, got %q", args[0])
	}
	res, err := identity.Init(e.dataDir, *name, *root, time.Now())
	if errors.Is(err, identity.ErrExists) {
		return withHint(fmt.Errorf("%s already holds a node identity; init never overwrites one", e.dataDir),
			fmt.Sprintf("run 'sios --data %s id' to see it, or choose another --data directory", e.dataDir))
	}
	if err != nil {
		return err
	}
	node := res.Node
	if err := policy.WriteDefaults(e.dataDir); err != nil {
		return err
	}
	l, err := ledger.Open(ctx, e.ledgerDir(), node, ledger.Options{CheckpointInterval: 100 * time.Millisecond})
	if err != nil {
		return err
	}
	_, _, err = l.Append(ctx, &oar.Record{
		Actor: oar.Actor{ID: "operator"}, Action: oar.ActionNodeInit, Resource: node.ID(),
		Detail: mustJSON(map[string]string{"name": node.Cert.Name, "root_id": node.Cert.RootID}),
	})
	if cerr := l.Close(ctx); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(e.stdout, map[string]string{
			"node_id": node.ID(), "root_id": node.Cert.RootID, "root_key_file": res.RootKeyFile, "data_dir": e.dataDir,
		})
	}
	fmt.Fprintln(e.stdout, node.ID())
	if res.RootKeyFile != "" {
		fmt.Fprintf(e.stderr, "sios: created institution root key %s (%s)\n", res.RootKeyFile, node.Cert.RootID)
		fmt.Fprintf(e.stderr, "sios: hint: move %s offline; it is needed only to enrol more nodes (sios init --root FILE)\n", res.RootKeyFile)
	}
	return nil
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func printJSON(w interface{ Write([]byte) (int, error) }, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
