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
	// Records are receipted before a checkpoint commits to them: show those too, so
	// that every record a caller holds a receipt for is here, marked as pending.
	pending, err := r.Pending(ctx)
	if err != nil {
		return err
	}
	size := r.Size()
	total := size + uint64(len(pending))
	from := total - min(*n, total)
	var shown []shownEntry
	if from < size {
		entries, err := r.Entries(ctx, from, size)
		if err != nil {
			return err
		}
		for k, entry := range entries {
			shown = append(shown, newShownEntry(from+uint64(k), entry, ""))
		}
	}
	for _, p := range pending {
		if p.Index >= from {
			shown = append(shown, newShownEntry(p.Index, p.Entry, p.State))
		}
	}
	if *asJSON {
		if shown == nil {
			shown = []shownEntry{}
		}
		return printJSON(e.stdout, shown)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "INDEX\tTIME\tKIND\tACTION\tACTOR\tRESOURCE\tSTATE")
	for _, s := range shown {
		state := "checkpointed"
		if s.Pending != "" {
			state = "pending " + s.Pending
		}
		p, err := oar.Parse(s.Entry)
		switch {
		case err != nil:
			fmt.Fprintf(tw, "%d\t-\tinvalid\t%v\t\t\t%s\n", s.Index, err, state)
		case p.Seal != nil:
			fmt.Fprintf(tw, "%d\t%s\tseal\tseal %d of %d..%d\t\t\t%s\n", s.Index, p.Seal.Time, p.Seal.Seq, p.Seal.First, p.Seal.Index()-1, state)
		default:
			rec := p.Record
			fmt.Fprintf(tw, "%d\t%s\trecord\t%s\t%s\t%s\t%s\n", s.Index, rec.Time, rec.Action, rec.Actor.ID, rec.Resource, state)
		}
	}
	return tw.Flush()
}
