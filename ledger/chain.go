package ledger

import (
	"bytes"
	"encoding/hex"
	"fmt"

	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/oar"
)

// VerifyError names the first entry that failed verification and why.
type VerifyError struct {
	Index  uint64
	Reason string
}

func (e *VerifyError) Error() string { return fmt.Sprintf("entry %d: %s", e.Index, e.Reason) }

// chain checks a run of consecutive entries: each is canonical and valid, every record
// is covered by the seal that follows its batch, seals are numbered and linked in
// order, their roots match their records, and both signatures verify.
type chain struct {
	nodeID string
	pub    identity.PublicKey

	next       uint64   // index of the next entry
	batchFirst uint64   // index of the first record of the open batch
	hashes     [][]byte // record hashes of the open batch
	known      bool     // seq and prev are known (false for a bundle that starts mid-log)
	seq        uint64
	prev       []byte

	records, seals uint64
}

func newChain(nodeID string, pub identity.PublicKey, start uint64) *chain {
	return &chain{nodeID: nodeID, pub: pub, next: start, batchFirst: start, known: start == 0}
}

func (c *chain) add(entry, leaf []byte) error {
	e, err := oar.Parse(entry)
	return c.addParsed(e, err, leaf, c.checkSeal(e))
}

// checkSeal verifies a seal entry's signatures; nil for anything else. It depends on
// nothing but the entry, so it can run ahead on another goroutine.
func (c *chain) checkSeal(e *oar.Entry) error {
	if e == nil || e.Seal == nil {
		return nil
	}
	return e.Seal.VerifySignature(c.pub)
}

// addParsed is add for an entry already parsed, and if a seal, already checked with
// checkSeal (perhaps on another goroutine): sigErr is that result.
func (c *chain) addParsed(e *oar.Entry, parseErr error, leaf []byte, sigErr error) error {
	i := c.next
	c.next++
	bad := func(format string, a ...any) error { return &VerifyError{Index: i, Reason: fmt.Sprintf(format, a...)} }
	if parseErr != nil {
		return bad("%v", parseErr)
	}
	switch e.Kind {
	case oar.KindRecord:
		if e.Record.Node != c.nodeID {
			return bad("record names node %s, not %s", e.Record.Node, c.nodeID)
		}
		if len(c.hashes) >= oar.MaxSealCount {
			return bad("more than %d records without a seal", oar.MaxSealCount)
		}
		c.hashes = append(c.hashes, leaf)
		c.records++
		return nil
	case oar.KindSeal:
		s := e.Seal
		if s.Node != c.nodeID {
			return bad("seal names node %s, not %s", s.Node, c.nodeID)
		}
		if len(c.hashes) == 0 {
			return bad("seal %d covers no records", s.Seq)
		}
		if s.First != c.batchFirst || s.Count != uint64(len(c.hashes)) {
			return bad("seal %d claims records %d..%d, but the records before it are %d..%d",
				s.Seq, s.First, s.First+s.Count-1, c.batchFirst, i-1)
		}
		if c.known && s.Seq != c.seq {
			return bad("seal number %d, want %d (a seal is missing or repeated)", s.Seq, c.seq)
		}
		if c.known && s.Prev != hex.EncodeToString(c.prev) {
			return bad("seal %d does not link to the previous seal", s.Seq)
		}
		if !bytes.Equal(s.RootBytes(), oar.MerkleRoot(c.hashes)) {
			return bad("seal %d root does not match records %d..%d (a record was altered, added, removed or reordered)",
				s.Seq, c.batchFirst, i-1)
		}
		if sigErr != nil {
			return bad("%v", sigErr)
		}
		c.known, c.seq, c.prev = true, s.Seq+1, leaf
		c.batchFirst, c.hashes = c.next, c.hashes[:0]
		c.seals++
		return nil
	}
	return bad("unknown entry kind %q", e.Kind)
}

// pending is the number of records after the last seal.
func (c *chain) pending() uint64 { return uint64(len(c.hashes)) }
