package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/sios-project/sios/fleet"
	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/internal/files"
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

// runTrust handles 'sios trust add-root FILE', 'sios trust add-ek --institution ROOTID
// (SHA256 | --ca FILE)' and 'sios trust list [--json]'.
func runTrust(ctx context.Context, e *env, args []string) error {
	const usage = "usage: sios [--data DIR] trust add-root FILE | trust add-ek --institution ROOTID (SHA256 | --ca FILE) | trust list [--json]"
	if len(args) == 0 {
		return usageError(usage)
	}
	if isHelp(args[0]) {
		fmt.Fprintln(e.stdout, strings.Replace(usage, "usage", "Usage", 1))
		return nil
	}
	if args[0] != "add-root" && args[0] != "add-ek" && args[0] != "list" {
		return usageError("unknown trust subcommand %q (add-root, add-ek, list)", args[0])
	}
	fs := newFlags(e, "trust "+args[0], "trust add-root FILE | trust add-ek --institution ROOTID (SHA256 | --ca FILE) | trust list [--json]")
	asJSON := fs.Bool("json", false, "print JSON")
	institution := fs.String("institution", "", "add-ek: the root id of the institution whose nodes may show this TPM endorsement key")
	caFile := fs.String("ca", "", "add-ek: accept every EK whose certificate chains to the EK CA certificates in FILE (PEM, or one DER certificate)")
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
		data, err := os.ReadFile(rest[0])
		if err != nil {
			return err
		}
		rf, err := fleet.AddRoot(e.dataDir, data)
		if err != nil {
			return fmt.Errorf("%s: %w", rest[0], err)
		}
		fmt.Fprintf(e.stdout, "trusting institution root %s\n", rf.RootID)
		return nil
	case "add-ek":
		return trustAddEK(e, *cert, *institution, *caFile, rest)
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
	return usageError("unknown trust subcommand %q (add-root, add-ek, list)", args[0])
}

// trustAddEK pins a TPM endorsement key (by hash) or EK CA certificates (from a file)
// for an institution this node already trusts.
func trustAddEK(e *env, own identity.Certificate, institution, caFile string, rest []string) error {
	if institution == "" || (len(rest) == 1) == (caFile != "") || len(rest) > 1 {
		return usageError("trust add-ek needs --institution ROOTID and either one EK hash (SHA256) or --ca FILE")
	}
	_, list, err := fleet.LoadTrust(e.dataDir, own)
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(list, func(r fleet.TrustedRoot) bool { return r.RootID == institution }) {
		return withHint(fmt.Errorf("institution %s is not trusted here: its nodes are refused whatever their TPM", institution),
			"pin its root first with 'sios trust add-root FILE'; 'sios trust list' shows the roots trusted")
	}
	var ca []byte
	ek := ""
	if caFile != "" {
		if ca, err = files.ReadFileCapped(caFile, 1<<20, "1 MiB"); err != nil {
			return err
		}
	} else {
		ek = strings.ToLower(rest[0])
	}
	et, err := fleet.AddEK(e.dataDir, institution, ek, ca)
	if err != nil {
		if caFile != "" {
			return fmt.Errorf("%s: %w", caFile, err)
		}
		return err
	}
	if ek != "" {
		fmt.Fprintf(e.stdout, "accepting TPM endorsement key %s for institution %s\n", ek, institution)
	} else {
		fmt.Fprintf(e.stdout, "accepting TPM endorsement keys certified by the EK CAs in %s for institution %s (%d EK CAs pinned)\n", caFile, institution, len(et.CAs))
	}
	return nil
}
