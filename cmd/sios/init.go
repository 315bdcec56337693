package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/sios-project/sios/fleet"
	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/identity/tpm"
	"github.com/sios-project/sios/ledger"
	"github.com/sios-project/sios/oar"
	"github.com/sios-project/sios/policy"
)

func runInit(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "init", "init [--name NAME] [--root ROOTKEYFILE] [--tpm DEVICE|HOST:PORT [--tpm-pcrs 0,7]] [--json]")
	name := fs.String("name", "", "node name (default: the host name)")
	root := fs.String("root", "", "enrol under the institution root key in this file (default: create a new root)")
	tpmAddr := fs.String("tpm", "", "seal the node key to this TPM: a device (/dev/tpmrm0) or a TPM simulator's HOST:PORT on loopback")
	tpmPCRs := fs.String("tpm-pcrs", "", "with --tpm: also seal to the current values of these SHA-256 PCRs, e.g. 0,7")
	asJSON := fs.Bool("json", false, "print JSON")
	args, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(args) > 0 {
		return usageError("init takes no arguments, got %q", args[0])
	}
	if *tpmPCRs != "" && *tpmAddr == "" {
		return usageError("--tpm-pcrs needs --tpm: PCRs are what the key is sealed to in a TPM")
	}
	var res *identity.InitResult
	var bound *tpm.InitResult // nil unless --tpm
	pcrs, err := tpm.ParsePCRs(*tpmPCRs)
	if err != nil {
		return usageError("--tpm-pcrs: %v", err)
	}
	if _, serr := os.Stat(filepath.Join(e.dataDir, identity.NodeKeyFile)); serr == nil {
		err = identity.ErrExists // said before a TPM is opened for nothing
	} else if *tpmAddr != "" {
		bound, err = initTPM(e.dataDir, *name, *root, *tpmAddr, pcrs)
		if bound != nil {
			res = bound.InitResult
		}
	} else {
		res, err = identity.Init(e.dataDir, *name, *root, time.Now())
	}
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
	detail := map[string]any{"name": node.Cert.Name, "root_id": node.Cert.RootID, "attestation": fleet.AttestSoftware}
	if bound != nil {
		detail["attestation"], detail["ek_sha256"], detail["pcrs"] = fleet.AttestTPM, bound.EKSHA256, pcrsOrEmpty(pcrs)
	}
	_, _, err = l.Append(ctx, &oar.Record{
		Actor: oar.Actor{ID: "operator"}, Action: oar.ActionNodeInit, Resource: node.ID(), Detail: mustJSON(detail),
	})
	if cerr := l.Close(ctx); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if bound != nil && bound.Note != "" {
		fmt.Fprintf(e.stderr, "sios: note: %s\n", bound.Note)
		fmt.Fprintf(e.stderr, "sios: hint: peers must pin this node's EK by its hash: sios trust add-ek --institution %s %s\n", node.Cert.RootID, bound.EKSHA256)
	}
	if *asJSON {
		out := map[string]any{
			"node_id": node.ID(), "root_id": node.Cert.RootID, "root_key_file": res.RootKeyFile, "data_dir": e.dataDir,
			"attestation": detail["attestation"],
		}
		if bound != nil {
			out["ek_sha256"], out["pcrs"], out["tpm"] = bound.EKSHA256, pcrsOrEmpty(pcrs), *tpmAddr
		}
		return printJSON(e.stdout, out)
	}
	fmt.Fprintln(e.stdout, node.ID())
	if bound != nil {
		fmt.Fprintf(e.stderr, "sios: node key sealed to the TPM at %s (EK %s)\n", *tpmAddr, bound.EKSHA256)
	}
	if res.RootKeyFile != "" {
		fmt.Fprintf(e.stderr, "sios: created institution root key %s (%s)\n", res.RootKeyFile, node.Cert.RootID)
		fmt.Fprintf(e.stderr, "sios: hint: move %s offline; it is needed only to enrol more nodes (sios init --root FILE)\n", res.RootKeyFile)
	}
	return nil
}

// initTPM creates the node identity with its key sealed to the TPM at addr.
func initTPM(dir, name, rootKey, addr string, pcrs []int) (*tpm.InitResult, error) {
	t, err := tpm.Open(addr)
	if err != nil {
		return nil, withHint(err, "name a TPM device (/dev/tpmrm0) or a running TPM simulator's HOST:PORT, and make sure no other process holds it")
	}
	defer t.Close()
	res, err := tpm.Init(t, dir, name, rootKey, pcrs, time.Now())
	if err != nil && !errors.Is(err, identity.ErrExists) {
		return nil, fmt.Errorf("sealing the node key to the TPM at %s: %w", addr, err)
	}
	return res, err
}

func pcrsOrEmpty(p []int) []int {
	if p == nil {
		return []int{}
	}
	return p
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
