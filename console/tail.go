package console

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"

	"github.com/sios-project/sios/ledger"
	"github.com/sios-project/sios/oar"
)

// Reading the log for the console. Every record is shown only if the viewer may read
// it (mayRead: the audit.read decision the audit explainer uses); a record they may
// not read is never shown, counted or confirmed to exist. Seals say nothing about
// anyone and are shown to everyone.

// bundleWidth is the number of entries in one tlog-tiles entry bundle: the console
// reads the log backwards a bundle at a time.
const bundleWidth = 256

// mayRead decides whether the viewer may read record idx: the pipeline's audit.read
// decision (the audit explainer's, GET /v1/receipts's), for the data flowing to the
// viewer.
func (v *View) mayRead(idx uint64, rec *oar.Record) bool {
	return v.c.cfg.Pipeline.MayReadRecord(&v.P, idx, rec)
}

// entry is one log entry read, parsed (Entry nil if it does not parse).
type entry struct {
	Index uint64
	Raw   []byte
	Entry *oar.Entry
}

// openLog opens the log for reading; an empty log is a reader of nothing (nil).
func (v *View) openLog() (*ledger.Reader, error) {
	r, err := v.c.cfg.OpenLog()
	if errors.Is(err, ledger.ErrEmpty) {
		return nil, nil
	}
	return r, err
}

// tailFrom opens the node's log for a page that reads back from before (0: from its
// end): the reader (nil while the log is empty), its size, and the index to read
// below.
func (v *View) tailFrom(before uint64) (r *ledger.Reader, size, end uint64, err error) {
	if r, err = v.openLog(); err != nil || r == nil {
		return nil, 0, 0, err
	}
	size, end = r.Size(), r.Size()
	if before > 0 && before < end {
		end = before
	}
	return r, size, end, nil
}

// backwards calls each for entries end-1, end-2, … down to index 0 or until it has
// examined max entries or each returns false, with each entry parsed. It returns the
// lowest index examined.
func backwards(ctx context.Context, r *ledger.Reader, end uint64, max int, each func(e entry) bool) (lowest uint64, err error) {
	return scan(ctx, r, end, max, true, each)
}

// scan is backwards, parsing the entries only if parse is set.
func scan(ctx context.Context, r *ledger.Reader, end uint64, max int, parse bool, each func(e entry) bool) (lowest uint64, err error) {
	lowest = end
	examined := 0
	for end > 0 && examined < max {
		from := (end - 1) / bundleWidth * bundleWidth
		raws, err := r.Entries(ctx, from, end)
		if err != nil {
			return lowest, err
		}
		for k := len(raws) - 1; k >= 0; k-- {
			idx := from + uint64(k)
			e := entry{Index: idx, Raw: raws[k]}
			if parse {
				e.Entry, _ = oar.Parse(raws[k])
			}
			lowest = idx
			examined++
			if !each(e) || examined >= max {
				return lowest, nil
			}
		}
		end = from
	}
	return lowest, nil
}

// findHash finds the entry whose record hash is h among the max entries before end.
func findHash(ctx context.Context, r *ledger.Reader, end uint64, max int, h string) (uint64, bool, error) {
	want, err := hex.DecodeString(h)
	if err != nil || len(want) != oar.HashSize {
		return 0, false, nil
	}
	var found *uint64
	_, err = scan(ctx, r, end, max, false, func(e entry) bool {
		if bytes.Equal(oar.RecordHash(e.Raw), want) {
			idx := e.Index
			found = &idx
			return false
		}
		return true
	})
	if err != nil || found == nil {
		return 0, false, err
	}
	return *found, true, nil
}
