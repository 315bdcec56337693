package console

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"

	"github.com/sios-project/sios/oar"
)

// One entry of the log: a record the viewer may read, with its receipt (the seal that
// signs it and its inclusion path), and its links to other records; or a seal. A
// record the viewer may not read gets the same answer as one that does not exist.

func recordPage() Page {
	return Page{Path: "/console/audit/record/{index}", Title: "Audit record", Template: "record.html", Data: recordData}
}

// recordByHashPage finds a record by its record hash (the form links use) among the
// last MaxLinkScan entries, and sends the browser to it.
func recordByHashPage() Page {
	return Page{Path: "/console/audit/hash/{hash}", Title: "Audit record", Data: recordByHash}
}

// receiptPage hands out a record's receipt as a file, to verify offline.
func receiptPage() Page {
	return Page{Path: "/console/audit/receipt/{index}", Title: "Receipt", Data: receiptData}
}

type linkRow struct {
	Rel, Hash string
	Index     *uint64 // nil: not among the entries searched, or not one the viewer may read
}

type recordView struct {
	Index      uint64
	Hash       string
	Record     *oar.Record
	Seal       *oar.Seal
	Detail     string   // the detail member, indented
	Parties    []string // each party's signed contribution, indented
	Links      []linkRow
	Receipt    string // the receipt, indented
	ReceiptErr string
	Size       uint64
}

// errNoRecord is the one answer for a record that does not exist, is not yet in the
// checkpointed log, or is not the viewer's to read.
func errNoRecord(idx uint64) error {
	return errorf(http.StatusNotFound, "there is no record %d that you may read in the checkpointed log", idx)
}

// readEntry reads entry idx for the viewer: a seal, or a record they may read. It
// reads the entry bundle that holds idx once, for the entry and for the records its
// links name when they are in the same bundle (a completion's admission usually is).
func (v *View) readEntry(idx uint64) (*entry, *recordView, error) {
	r, err := v.openLog()
	if err != nil {
		return nil, nil, err
	}
	if r == nil || idx >= r.Size() {
		return nil, nil, errNoRecord(idx)
	}
	ctx := v.r.Context()
	base := idx / bundleWidth * bundleWidth
	bundle, err := r.Entries(ctx, base, min(base+bundleWidth, r.Size()))
	if err != nil {
		return nil, nil, err
	}
	raw := bundle[idx-base]
	e, err := oar.Parse(raw)
	if err != nil {
		return nil, nil, errorf(http.StatusUnprocessableEntity, "entry %d does not parse (%v); 'sios audit verify' names what is wrong", idx, err)
	}
	if e.Record != nil && !v.mayRead(idx, e.Record) {
		return nil, nil, errNoRecord(idx)
	}
	out := &recordView{Index: idx, Hash: hex.EncodeToString(oar.RecordHash(raw)), Record: e.Record, Seal: e.Seal, Size: r.Size()}
	if e.Record == nil {
		return &entry{Index: idx, Raw: raw, Entry: e}, out, nil
	}
	if rc, err := r.Receipt(ctx, idx); err != nil {
		out.ReceiptErr = "no receipt yet: the seal that covers this record is not in the checkpointed log"
	} else {
		b, _ := json.MarshalIndent(rc, "", "  ")
		out.Receipt = string(b)
	}
	for _, l := range e.Record.Links {
		row := linkRow{Rel: l.Rel, Hash: l.RecordHash}
		i, target, ok := inBundle(bundle, base, idx, l.RecordHash)
		if !ok && base > 0 {
			if j, found, err := findHash(ctx, r, base, MaxLinkScan-int(idx-base), l.RecordHash); err == nil && found {
				if b, err := r.Entry(ctx, j); err == nil {
					i, target, ok = j, b, true
				}
			}
		}
		if ok {
			if p, err := oar.Parse(target); err == nil && (p.Seal != nil || v.mayRead(i, p.Record)) {
				row.Index = &i
			}
		}
		out.Links = append(out.Links, row)
	}
	return &entry{Index: idx, Raw: raw, Entry: e}, out, nil
}

// inBundle finds the entry before idx, in the bundle starting at base, whose record
// hash is h.
func inBundle(bundle [][]byte, base, idx uint64, h string) (uint64, []byte, bool) {
	want, err := hex.DecodeString(h)
	if err != nil {
		return 0, nil, false
	}
	for i := idx; i > base; i-- {
		if raw := bundle[i-1-base]; bytes.Equal(oar.RecordHash(raw), want) {
			return i - 1, raw, true
		}
	}
	return 0, nil, false
}

func recordIndex(v *View) (uint64, error) {
	s := v.r.PathValue("index")
	idx, ok, err := parseIndex("index", s)
	if err == nil && !ok {
		err = errorf(http.StatusBadRequest, "no index")
	}
	return idx, err
}

func recordData(v *View) (any, error) {
	idx, err := recordIndex(v)
	if err != nil {
		return nil, err
	}
	_, out, err := v.readEntry(idx)
	if err != nil {
		return nil, err
	}
	if rec := out.Record; rec != nil {
		out.Detail = indent(rec.Detail)
		for _, p := range rec.Parties {
			out.Parties = append(out.Parties, indent(p))
		}
	}
	return out, nil
}

func recordByHash(v *View) (any, error) {
	h := v.r.PathValue("hash")
	r, err := v.openLog()
	if err != nil {
		return nil, err
	}
	if r != nil {
		idx, ok, err := findHash(v.r.Context(), r, r.Size(), MaxLinkScan, h)
		if err != nil {
			return nil, err
		}
		if ok {
			if _, _, err := v.readEntry(idx); err == nil {
				return Redirect("/console/audit/record/" + strconv.FormatUint(idx, 10)), nil
			}
		}
	}
	return nil, errorf(http.StatusNotFound, "no record you may read has the hash %s among the last %d entries (MaxLinkScan)", clip(h), MaxLinkScan)
}

func receiptData(v *View) (any, error) {
	idx, err := recordIndex(v)
	if err != nil {
		return nil, err
	}
	_, out, err := v.readEntry(idx)
	if err != nil {
		return nil, err
	}
	if out.Receipt == "" {
		return nil, errorf(http.StatusNotFound, "entry %d has no receipt yet (a seal has none; a record gets one when its seal is checkpointed)", idx)
	}
	return &Download{Name: fmt.Sprintf("receipt-%d.json", idx), ContentType: "application/json", Body: []byte(out.Receipt + "\n")}, nil
}

// indent pretty-prints a JSON member for the page; "" for none.
func indent(b json.RawMessage) string {
	if len(b) == 0 {
		return ""
	}
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		return string(b)
	}
	return out.String()
}
