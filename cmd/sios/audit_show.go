package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/sios-project/sios/ledger"
	"github.com/sios-project/sios/oar"
)

// shownEntry is the JSON form of one log entry.
type shownEntry struct {
	Index      uint64          `json:"index"`
	RecordHash string          `json:"record_hash"`
	Kind       string          `json:"kind"`
	Entry      json.RawMessage `json:"entry"`
	// Pending is set for an entry beyond the checkpoint: "checkpoint" (in the log's
	// tiles, awaiting a checkpoint) or "integration" (only in the journal).
	Pending string `json:"pending,omitempty"`
}

func newShownEntry(i uint64, e []byte, pending string) shownEntry {
	kind := "unknown"
	if p, err := oar.Parse(e); err == nil {
		kind = p.Kind
	}
	return shownEntry{Index: i, RecordHash: hex.EncodeToString(oar.RecordHash(e)), Kind: kind, Entry: e, Pending: pending}
}

// pendingNote is how text output marks an entry beyond the checkpoint.
func pendingNote(state string) string {
	switch state {
	case ledger.PendingCheckpoint:
		return "pending checkpoint (integrated, no checkpoint commits to it yet)"
	case ledger.PendingIntegration:
		return "pending integration (durable in the journal, not yet in the log)"
	}
	return ""
}

func runAuditShow(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "audit show", "audit show INDEX [--json]")
	asJSON := fs.Bool("json", false, "print JSON")
	args, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(args) != 1 {
		return usageError("audit show needs exactly one INDEX")
	}
	i, err := parseIndex(args[0])
	if err != nil {
		return err
	}
	r, _, err := e.openReader()
	if err != nil {
		return err
	}
	var s shownEntry
	if i < r.Size() {
		entry, err := r.Entry(ctx, i)
		if err != nil {
			return err
		}
		s = newShownEntry(i, entry, "")
	} else {
		pending, err := r.Pending(ctx)
		if err != nil {
			return err
		}
		k := i - r.Size()
		if k >= uint64(len(pending)) {
			return fmt.Errorf("index %d is beyond the log's %d entries", i, r.Size()+uint64(len(pending)))
		}
		s = newShownEntry(i, pending[k].Entry, pending[k].State)
	}
	entry := []byte(s.Entry)
	if *asJSON {
		return printJSON(e.stdout, s)
	}
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, entry, "", "  "); err != nil {
		pretty.Reset()
		pretty.Write(entry)
	}
	fmt.Fprintf(e.stdout, "index:        %d\nkind:         %s\nrecord_hash:  %s\n", s.Index, s.Kind, s.RecordHash)
	if s.Pending != "" {
		fmt.Fprintf(e.stdout, "state:        %s\n", pendingNote(s.Pending))
	}
	fmt.Fprintf(e.stdout, "%s\n", pretty.String())
	return nil
}
