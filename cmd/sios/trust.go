package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/sios-project/sios/admin"
	"github.com/sios-project/sios/fleet"
	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/internal/files"
	"github.com/sios-project/sios/ledger"
	"github.com/sios-project/sios/policy"
)

// runRoot handles 'sios root export --out FILE': the institution root's public key, to
// hand to other operators who choose to trust it.
func runRoot(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 || args[0] != "export" {
		return usageError("usage: sios [--data DIR] root export --out FILE")
	}
	fs := newFlags(e, "root export", "root export --out FILE")
	out := fs.String("out", "", "write the root public key to FILE (required)")
	rest, err := parseFlags(fs, args[1:])
	if err != nil {
		return err
	}
	if *out == "" || len(rest) > 0 {
		return usageError("root export needs --out FILE and no arguments")
	}
	cert, _, err := e.loadCert()
	if err != nil {
		return err
	}
	rf := fleet.ExportRoot(*cert)
	data, err := json.MarshalIndent(rf, "", "  ")
	if err != nil {
		return err
	}
	if err := files.Replace(*out, append(data, '\n'), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "exported institution root %s to %s\n", rf.RootID, *out)
	return nil
}

// trustUsage is the trust command's synopsis.
const trustUsage = "usage: sios [--data DIR] trust add-root FILE | trust add-ek --institution ROOTID (SHA256 | --ca FILE) | trust remove-ek --institution ROOTID (SHA256 | --ca FILE) | trust remove ROOTID|FILE | trust list [--json]"

// runTrust handles 'sios trust add-root FILE', 'sios trust add-ek --institution ROOTID
// (SHA256 | --ca FILE)', 'sios trust remove ROOTID|FILE' and 'sios trust list [--json]'.
// Changes are recorded before the store changes: through the running node, which
// takes them at once (a removal evicts the institution's peers), or on the data
// directory when no node runs.
func runTrust(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 {
		return usageError(trustUsage)
	}
	if isHelp(args[0]) {
		fmt.Fprintln(e.stdout, strings.Replace(trustUsage, "usage", "Usage", 1))
		return nil
	}
	if !slices.Contains([]string{"add-root", "add-ek", "remove-ek", "remove", "list"}, args[0]) {
		return usageError("unknown trust subcommand %q (add-root, add-ek, remove-ek, remove, list)", args[0])
	}
	fs := newFlags(e, "trust "+args[0], strings.TrimPrefix(trustUsage, "usage: sios [--data DIR] "))
	asJSON := fs.Bool("json", false, "print JSON")
	institution := fs.String("institution", "", "add-ek, remove-ek: the root id of the institution whose nodes may show this TPM endorsement key")
	caFile := fs.String("ca", "", "add-ek: accept every EK whose certificate chains to the EK CA certificates in FILE (PEM, or one DER certificate); remove-ek: no longer accept them")
	rest, err := parseFlags(fs, args[1:])
	if err != nil {
		return err
	}
	cert, _, err := e.loadCert()
	if err != nil {
		return err
	}
	switch args[0] {
	case "add-root":
		if len(rest) != 1 {
			return usageError("trust add-root needs exactly one FILE (made by 'sios root export')")
		}
		data, err := files.ReadFileCapped(rest[0], 1<<20, "1 MiB")
		if err != nil {
			return err
		}
		res, err := e.changeTrust(ctx, *cert, admin.TrustChange{Op: admin.TrustAddRoot, Root: data})
		if err != nil {
			return fmt.Errorf("%s: %w", rest[0], err)
		}
		if *asJSON {
			return printJSON(e.stdout, res)
		}
		fmt.Fprintf(e.stdout, "trusting institution root %s\n", res.RootID)
		return nil
	case "add-ek", "remove-ek":
		return trustChangeEK(ctx, e, *cert, args[0], *institution, *caFile, rest, *asJSON)
	case "remove":
		if len(rest) != 1 {
			return usageError("trust remove needs exactly one ROOTID (as 'sios trust list' shows) or root FILE")
		}
		rootID, err := fleet.RootIDOf(rest[0])
		if err != nil {
			return err
		}
		res, err := e.changeTrust(ctx, *cert, admin.TrustChange{Op: admin.TrustRemove, Institution: rootID})
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(e.stdout, res)
		}
		fmt.Fprintf(e.stdout, "no longer trusting institution root %s", res.RootID)
		if len(res.Evicted) > 0 {
			fmt.Fprintf(e.stdout, "; evicted its nodes %s", strings.Join(res.Evicted, ", "))
		}
		fmt.Fprintln(e.stdout)
		return nil
	case "list":
		_, list, err := fleet.LoadTrust(e.dataDir, *cert)
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(e.stdout, list)
		}
		for _, r := range list {
			note := ""
			if r.Own {
				note = " (this node's institution)"
			}
			fmt.Fprintf(e.stdout, "%s%s\n", r.RootID, note)
			if r.OwnEKSHA256 != "" {
				fmt.Fprintf(e.stdout, "  ek %s (this node's own TPM)\n", r.OwnEKSHA256)
			}
			for _, ek := range r.EKSHA256 {
				fmt.Fprintf(e.stdout, "  ek %s\n", ek)
			}
			for _, ca := range r.EKCAs {
				fmt.Fprintf(e.stdout, "  ek-ca %q (sha256 %s)\n", ca.Subject, ca.SHA256)
			}
		}
		return nil
	}
	return usageError("unknown trust subcommand %q (add-root, add-ek, remove-ek, remove, list)", args[0])
}

// changeTrust makes a recorded trust change through the running node, or on the data
// directory with its ledger when no node runs.
func (e *env) changeTrust(ctx context.Context, own identity.Certificate, c admin.TrustChange) (*admin.TrustResult, error) {
	if cl := admin.Dial(e.dataDir); cl != nil {
		var res admin.TrustResult
		if err := cl.Do(ctx, "POST", "/admin/trust", c, &res); err != nil {
			return nil, err
		}
		return &res, nil
	}
	var res *admin.TrustResult
	err := e.withLedger(ctx, func(_ *policy.Principals, l *ledger.Ledger) error {
		var err error
		res, err = admin.ChangeTrust(ctx, e.dataDir, own, l.Append, "operator", c, nil)
		return err
	})
	return res, err
}

// trustChangeEK pins (add-ek) or un-pins (remove-ek) a TPM endorsement key (by hash)
// or EK CA certificates (from a file) for an institution this node trusts.
func trustChangeEK(ctx context.Context, e *env, own identity.Certificate, op, institution, caFile string, rest []string, asJSON bool) error {
	if institution == "" || (len(rest) == 1) == (caFile != "") || len(rest) > 1 {
		return usageError("trust %s needs --institution ROOTID and either one EK hash (SHA256) or --ca FILE", op)
	}
	c := admin.TrustChange{Op: op, Institution: institution}
	if caFile != "" {
		ca, err := files.ReadFileCapped(caFile, 1<<20, "1 MiB")
		if err != nil {
			return err
		}
		c.CA = ca
	} else {
		c.EKSHA256 = strings.ToLower(rest[0])
	}
	res, err := e.changeTrust(ctx, own, c)
	if err != nil {
		if caFile != "" {
			return fmt.Errorf("%s: %w", caFile, err)
		}
		return err
	}
	if asJSON {
		return printJSON(e.stdout, res)
	}
	if op == admin.TrustRemoveEK {
		what := "TPM endorsement key " + c.EKSHA256
		if c.EKSHA256 == "" {
			what = "TPM endorsement keys certified by the EK CAs in " + caFile
		}
		fmt.Fprintf(e.stdout, "no longer accepting %s for institution %s\n", what, institution)
		if len(res.AttestAgain) > 0 {
			fmt.Fprintf(e.stdout, "checking again the TPMs of its nodes %s\n", strings.Join(res.AttestAgain, ", "))
		}
		return nil
	}
	if c.EKSHA256 != "" {
		fmt.Fprintf(e.stdout, "accepting TPM endorsement key %s for institution %s\n", c.EKSHA256, institution)
	} else {
		fmt.Fprintf(e.stdout, "accepting TPM endorsement keys certified by the EK CAs in %s for institution %s (%d EK CAs pinned)\n", caFile, institution, res.EKCAs)
	}
	return nil
}
