package main

import (
	"context"
	"fmt"
	"text/tabwriter"

	"github.com/sios-project/sios/oar"
)

func runAuditTail(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "audit tail", "audit tail [-n N] [--json]")
	n := fs.Uint64("n", 10, "number of entries")
	asJSON := fs.Bool("json", false, "print JSON")
	args, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(args) > 0 {
		return usageError("audit tail takes no arguments, got %q", args[0])
	}
	r, _, err := e.openReader()
	if err != nil {
		return err
	}
	size := r.Size()
	from := size - min(*n, size)
	entries, err := r.Entries(ctx, from, size)
	if err != nil {
		return err
	}
	shown := make([]shownEntry, len(entries))
	for k, entry := range entries {
		shown[k] = newShownEntry(from+uint64(k), entry)
	}
	if *asJSON {
		return printJSON(e.stdout, shown)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "INDEX\tTIME\tKIND\tACTION\tACTOR\tRESOURCE")
	for k, s := range shown {
		p, err := oar.Parse(entries[k])
		switch {
		case err != nil:
			fmt.Fprintf(tw, "%d\t-\tinvalid\t%v\t\t\n", s.Index, err)
		case p.Seal != nil:
			fmt.Fprintf(tw, "%d\t%s\tseal\tseal %d of %d..%d\t\t\n", s.Index, p.Seal.Time, p.Seal.Seq, p.Seal.First, p.Seal.Index()-1)
		default:
			rec := p.Record
			fmt.Fprintf(tw, "%d\t%s\trecord\t%s\t%s\t%s\n", s.Index, rec.Time, rec.Action, rec.Actor.ID, rec.Resource)
		}
	}
	return tw.Flush()
}
