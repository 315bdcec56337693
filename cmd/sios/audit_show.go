package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/sios-project/sios/oar"
)

// shownEntry is the JSON form of one log entry.
type shownEntry struct {
	Index      uint64          `json:"index"`
	RecordHash string          `json:"record_hash"`
	Kind       string          `json:"kind"`
	Entry      json.RawMessage `json:"entry"`
}

func newShownEntry(i uint64, e []byte) shownEntry {
	kind := "unknown"
	if p, err := oar.Parse(e); err == nil {
		kind = p.Kind
	}
	return shownEntry{Index: i, RecordHash: hex.EncodeToString(oar.RecordHash(e)), Kind: kind, Entry: e}
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
	entry, err := r.Entry(ctx, i)
	if err != nil {
		return err
	}
	s := newShownEntry(i, entry)
	if *asJSON {
		return printJSON(e.stdout, s)
	}
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, entry, "", "  "); err != nil {
		pretty.Reset()
		pretty.Write(entry)
	}
	fmt.Fprintf(e.stdout, "index:        %d\nkind:         %s\nrecord_hash:  %s\n%s\n", s.Index, s.Kind, s.RecordHash, pretty.String())
	return nil
}
