package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/sios-project/sios/fleet"
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

// runTrust handles 'sios trust add-root FILE' and 'sios trust list [--json]'.
func runTrust(ctx context.Context, e *env, args []string) error {
	const usage = "usage: sios [--data DIR] trust add-root FILE | trust list [--json]"
	if len(args) == 0 {
		return usageError(usage)
	}
	if isHelp(args[0]) {
		fmt.Fprintln(e.stdout, strings.Replace(usage, "usage", "Usage", 1))
		return nil
	}
	if args[0] != "add-root" && args[0] != "list" {
		return usageError("unknown trust subcommand %q (add-root, list)", args[0])
	}
	fs := newFlags(e, "trust "+args[0], "trust add-root FILE | trust list [--json]")
	asJSON := fs.Bool("json", false, "print JSON")
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
		}
		return nil
	}
	return usageError("unknown trust subcommand %q (add-root, list)", args[0])
}
