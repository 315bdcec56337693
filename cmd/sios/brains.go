package main

import (
	"context"
	"fmt"
	"text/tabwriter"

	"github.com/sios-project/sios/brain"
	"gopkg.in/yaml.v3"
)

func runBrains(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 {
		return usageError("usage: sios [--data DIR] brains list [--json] | brains show ID [--json]")
	}
	if isHelp(args[0]) {
		fmt.Fprintln(e.stdout, "Usage: sios [--data DIR] brains list [--json] | brains show ID [--json]")
		return nil
	}
	fs := newFlags(e, "brains "+args[0], "brains list [--json] | brains show ID [--json]")
	asJSON := fs.Bool("json", false, "print JSON")
	rest, err := parseFlags(fs, args[1:])
	if err != nil {
		return err
	}
	cat, err := brain.Load(e.dataDir)
	if err != nil {
		return err
	}
	switch args[0] {
	case "list":
		if len(rest) > 0 {
			return usageError("brains list takes no arguments")
		}
		all := cat.All()
		if *asJSON {
			// backend and model are always present: "" means the node's default.
			type listed struct {
				*brain.Brain
				Backend string `json:"backend"`
				Model   string `json:"model"`
			}
			out := make([]listed, len(all))
			for i, b := range all {
				out[i] = listed{Brain: b, Backend: b.Backend, Model: b.Model}
			}
			return printJSON(e.stdout, out)
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tKIND\tCLASSIFICATION\tBACKEND\tMODEL\tTITLE")
		for _, b := range all {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", b.ID, b.Kind, b.Classification, orDash(b.Backend, "(node default)"), orDash(b.Model, "-"), b.Title)
		}
		return tw.Flush()
	case "show":
		if len(rest) != 1 {
			return usageError("brains show needs exactly one brain ID")
		}
		b, ok := cat.Get(rest[0])
		if !ok {
			return withHint(fmt.Errorf("no brain %q", rest[0]), "'sios brains list' shows the catalogue")
		}
		if *asJSON {
			return printJSON(e.stdout, b)
		}
		out, err := yaml.Marshal(b)
		if err != nil {
			return err
		}
		_, err = e.stdout.Write(out)
		return err
	}
	return usageError("unknown brains subcommand %q (list, show)", args[0])
}

func orDash(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
