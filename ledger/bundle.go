package ledger

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/jcs"
	"github.com/sios-project/sios/oar"
	"github.com/transparency-dev/tessera/api/layout"
	"github.com/transparency-dev/tessera/client"
)

// BundleVersion is the "v" of an evidence bundle.
const BundleVersion = "oar-bundle/1"

// Limits on bundles, which come from outside: named in the errors that enforce them.
const (
	MaxBundleSize    = 1 << 30 // bytes of the bundle document
	MaxBundleEntries = 1 << 24
	MaxRangeHashes   = 64 // a compact range over a 2^64 tree has at most 64 nodes
)

// Bundle is an evidence bundle: a run of log entries with everything needed to verify
// them offline — the node's enrolment certificate (its public keys, signed by the
// institution root), a signed checkpoint, and the compact-range hashes that join the
// entries to the checkpoint's tree. It always starts at the first record of a seal's
// batch and ends with a seal, so that every record in it is covered.
type Bundle struct {
	V           string               `json:"v"`
	Certificate identity.Certificate `json:"certificate"`
	Checkpoint  string               `json:"checkpoint"`
	Start       uint64               `json:"start"`
	Entries     []string             `json:"entries"` // canonical JSON text of entries Start, Start+1, …
	Left        []string             `json:"left"`    // hex hashes of the compact range [0, Start)
	Right       []string             `json:"right"`   // hex hashes of the compact range [Start+len(Entries), size)
	// Attestation is the node's TPM evidence (identity/tpm.Evidence, canonical
	// sios-tpm-evidence/1) when its key is sealed to a TPM; absent otherwise. Verify
	// checks that it binds the certificate's node and keys (bundle_attestation.go).
	Attestation json.RawMessage `json:"attestation,omitempty"`
}

// Export builds a bundle holding entries from..to-1, widened to whole seal batches.
func (r *Reader) Export(ctx context.Context, cert identity.Certificate, from, to uint64) (*Bundle, error) {
	size := r.cp.Size
	if size == 0 {
		return nil, errors.New("the audit log is empty")
	}
	if to == 0 || to > size {
		to = size
	}
	if from >= to {
		return nil, fmt.Errorf("empty range %d..%d (the log has %d entries)", from, to, size)
	}
	first, _, err := r.sealAfter(ctx, from)
	if err != nil {
		return nil, err
	}
	last, _, err := r.sealAfter(ctx, to-1)
	if err != nil {
		return nil, err
	}
	// A seal's batch starts at its First, so from is widened back to it; when from is
	// itself a seal, the bundle starts with the batch that seal covers.
	start, end := first.First, last.Index()+1
	if err := checkBundleLimits(int(min(end-start, MaxBundleEntries+1)), 0); err != nil {
		return nil, fmt.Errorf("entries %d..%d: %v; export a narrower range", start, end-1, err)
	}
	entries, err := r.Entries(ctx, start, end)
	if err != nil {
		return nil, err
	}
	left, err := client.FetchRangeNodes(ctx, start, r.store.tile)
	if err != nil {
		return nil, fmt.Errorf("compact range [0, %d): %v", start, err)
	}
	right, err := r.rightRange(ctx, end, size)
	if err != nil {
		return nil, err
	}
	b := &Bundle{V: BundleVersion, Certificate: cert, Checkpoint: string(r.cp.Raw), Start: start,
		Entries: make([]string, len(entries)), Left: oar.HexHashes(left), Right: oar.HexHashes(right)}
	for i, e := range entries {
		b.Entries[i] = string(e)
	}
	return b, nil
}

// rightRange computes the compact range [end, size) from the leaf hashes.
func (r *Reader) rightRange(ctx context.Context, end, size uint64) ([][]byte, error) {
	rng := rangeFactory.NewEmptyRange(end)
	for idx := end / layout.EntryBundleWidth; idx*layout.EntryBundleWidth < size; idx++ {
		leaves, err := r.store.leafHashes(ctx, idx, size)
		if err != nil {
			return nil, err
		}
		for k, h := range leaves {
			if idx*layout.EntryBundleWidth+uint64(k) >= end {
				if err := rng.Append(h, nil); err != nil {
					return nil, err
				}
			}
		}
	}
	return rng.Hashes(), nil
}

// ReadBundle decodes a bundle, enforcing MaxBundleSize.
func ReadBundle(rd io.Reader) (*Bundle, error) {
	data, err := io.ReadAll(io.LimitReader(rd, MaxBundleSize+1))
	if err != nil {
		return nil, err
	}
	return ParseBundle(data)
}

// checkBundleLimits is the one rule on a bundle's size, applied by the writer
// (Marshal) and the reader (ParseBundle) alike.
func checkBundleLimits(entries, size int) error {
	if size > MaxBundleSize {
		return fmt.Errorf("bundle is %d bytes, more than the limit of %d (MaxBundleSize)", size, MaxBundleSize)
	}
	if entries < 1 || entries > MaxBundleEntries {
		return fmt.Errorf("bundle holds %d entries; it must hold 1 to %d (MaxBundleEntries)", entries, MaxBundleEntries)
	}
	return nil
}

// Marshal writes the bundle document (indented JSON), refusing a bundle that
// ParseBundle would refuse for its size.
func (b *Bundle) Marshal() ([]byte, error) {
	if err := checkBundleLimits(len(b.Entries), 0); err != nil {
		return nil, err
	}
	data, err := json.MarshalIndent(b, "", " ")
	if err != nil {
		return nil, err
	}
	data = append(data, '\n')
	if err := checkBundleLimits(len(b.Entries), len(data)); err != nil {
		return nil, err
	}
	return data, nil
}

// ParseBundle decodes a bundle document without verifying it. It is strict, so that
// no two verifiers read one bundle differently (jcs.DecodeStrict): a member given twice
// or spelt in another case, an unknown member at any depth, and trailing data are
// refused, and every member of the bundle but attestation is required and must not be
// null.
func ParseBundle(data []byte) (*Bundle, error) {
	if len(data) > MaxBundleSize {
		return nil, fmt.Errorf("bundle is larger than %d bytes (MaxBundleSize)", MaxBundleSize)
	}
	var w struct {
		V           *string               `json:"v"`
		Certificate *identity.Certificate `json:"certificate"`
		Checkpoint  *string               `json:"checkpoint"`
		Start       *uint64               `json:"start"`
		Entries     *[]string             `json:"entries"`
		Left        *[]string             `json:"left"`
		Right       *[]string             `json:"right"`
		// Attestation is optional: a node whose key is not sealed to a TPM has none.
		Attestation json.RawMessage `json:"attestation"`
	}
	if err := jcs.DecodeStrict(data, &w); err != nil {
		return nil, fmt.Errorf("bundle is not valid JSON as oar-bundle/1 requires: %v", err)
	}
	for _, m := range []struct {
		name    string
		missing bool
	}{
		{"v", w.V == nil}, {"certificate", w.Certificate == nil}, {"checkpoint", w.Checkpoint == nil},
		{"start", w.Start == nil}, {"entries", w.Entries == nil || *w.Entries == nil},
		{"left", w.Left == nil || *w.Left == nil}, {"right", w.Right == nil || *w.Right == nil},
	} {
		if m.missing {
			return nil, fmt.Errorf("bundle member %q is missing or null", m.name)
		}
	}
	b := &Bundle{V: *w.V, Certificate: *w.Certificate, Checkpoint: *w.Checkpoint, Start: *w.Start,
		Entries: *w.Entries, Left: *w.Left, Right: *w.Right, Attestation: w.Attestation}
	if b.V != BundleVersion {
		return nil, fmt.Errorf("bundle v is %q, want %q", b.V, BundleVersion)
	}
	if err := checkBundleLimits(len(b.Entries), len(data)); err != nil {
		return nil, err
	}
	if len(b.Left) > MaxRangeHashes || len(b.Right) > MaxRangeHashes {
		return nil, fmt.Errorf("bundle compact ranges hold more than %d hashes (MaxRangeHashes)", MaxRangeHashes)
	}
	return b, nil
}

// BundleResult says what a verified bundle proved.
type BundleResult struct {
	NodeID  string `json:"node_id"`
	RootID  string `json:"root_id"`
	Start   uint64 `json:"start"`
	End     uint64 `json:"end"`
	Records uint64 `json:"records"`
	Seals   uint64 `json:"seals"`
	Size    uint64 `json:"checkpoint_size"`
	// Attestation is "tpm" when the bundle carries evidence that binds the node's keys
	// to the TPM whose endorsement key EKSHA256 names, else "software".
	Attestation string `json:"attestation"`
	EKSHA256    string `json:"ek_sha256,omitempty"`
}

// Verify checks the bundle with nothing but its own contents: the certificate's root
// signature, both checkpoint signatures, every entry and seal, and that the entries sit
// at their indices in the checkpoint's tree. The caller compares RootID with the
// institution root it trusts.
func (b *Bundle) Verify() (*BundleResult, error) {
	nodePub, _, err := b.Certificate.Verify()
	if err != nil {
		return nil, err
	}
	attestation, ek, err := b.verifyAttestation(nodePub)
	if err != nil {
		return nil, err
	}
	cp, err := ParseCheckpoint([]byte(b.Checkpoint), b.Certificate.NodeID, nodePub)
	if err != nil {
		return nil, err
	}
	end := b.Start + uint64(len(b.Entries))
	if end < b.Start || end > cp.Size {
		return nil, fmt.Errorf("bundle entries %d..%d lie beyond the checkpoint's %d entries", b.Start, end-1, cp.Size)
	}
	left, err := unhexAll(b.Left, "left")
	if err != nil {
		return nil, err
	}
	right, err := unhexAll(b.Right, "right")
	if err != nil {
		return nil, err
	}
	rng, err := rangeFactory.NewRange(0, b.Start, left)
	if err != nil {
		return nil, fmt.Errorf("left compact range: %v", err)
	}
	c := newChain(b.Certificate.NodeID, nodePub, b.Start)
	for _, s := range b.Entries {
		e := []byte(s)
		leaf := oar.RecordHash(e)
		if err := c.add(e, leaf); err != nil {
			return nil, err
		}
		if err := rng.Append(leaf, nil); err != nil {
			return nil, err
		}
	}
	if p := c.pending(); p > 0 {
		return nil, &VerifyError{Index: c.batchFirst, Reason: fmt.Sprintf("the bundle ends with %d records not covered by a seal", p)}
	}
	rr, err := rangeFactory.NewRange(end, cp.Size, right)
	if err != nil {
		return nil, fmt.Errorf("right compact range: %v", err)
	}
	if err := rng.AppendRange(rr, nil); err != nil {
		return nil, err
	}
	root, err := rng.GetRootHash(nil)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(root, cp.Root) {
		return nil, fmt.Errorf("entries %d..%d with the bundle's compact ranges do not give the checkpoint's root: they are not the log's entries at those indices", b.Start, end-1)
	}
	return &BundleResult{NodeID: b.Certificate.NodeID, RootID: b.Certificate.RootID, Start: b.Start, End: end,
		Records: c.records, Seals: c.seals, Size: cp.Size, Attestation: attestation, EKSHA256: ek}, nil
}

func unhexAll(ss []string, what string) ([][]byte, error) {
	out := make([][]byte, len(ss))
	for i, s := range ss {
		h, err := hex.DecodeString(s)
		if err != nil || len(h) != oar.HashSize || hex.EncodeToString(h) != s {
			return nil, fmt.Errorf("bundle %s[%d] must be %d bytes in lowercase hex", what, i, oar.HashSize)
		}
		out[i] = h
	}
	return out, nil
}
