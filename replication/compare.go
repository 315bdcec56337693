package replication

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/jcs"
	"github.com/sios-project/sios/ledger"
)

// Comparing copies across the fleet ('sios audit compare --peer NODEID' on a running
// node). A node that keeps a copy of a source asks the source for a consistency proof
// from its copy's size to the source's checkpoint; a source asks a replica for the
// checkpoint of its copy and proves it against its own log. Either way the proof is
// checked here, against checkpoints signed by the source.

// ConsistencyMsg is the answer of GET /fleet/v1/audit/consistency?from=N (a source to
// its designated replicas) and of GET /fleet/v1/audit/copy (a replica to the source it
// keeps a copy of; no proof).
type ConsistencyMsg struct {
	Checkpoint string   `json:"checkpoint"`
	Proof      [][]byte `json:"proof,omitempty"`
}

// parseConsistency reads a consistency answer strictly (jcs.DecodeStrict): at most
// MaxProofAnswer bytes, no member repeated, differently cased or unknown. The
// checkpoint and the proof are checked by the caller.
func parseConsistency(b []byte) (*ConsistencyMsg, error) {
	if len(b) > MaxProofAnswer {
		return nil, fmt.Errorf("%d bytes, more than %d (MaxProofAnswer)", len(b), MaxProofAnswer)
	}
	var m ConsistencyMsg
	if err := jcs.DecodeStrict(b, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

// CompareResult is the answer of the admin compare endpoint.
type CompareResult struct {
	Identical       bool    `json:"identical"`
	CommonSize      uint64  `json:"common_size"`
	Root            string  `json:"root,omitempty"`
	FirstDivergence *uint64 `json:"first_divergence"`
	Reason          string  `json:"reason"`
}

// Comparison turns the result back into the ledger's form.
func (c *CompareResult) Comparison() *ledger.Comparison {
	root, _ := hex.DecodeString(c.Root)
	return &ledger.Comparison{Identical: c.Identical, CommonSize: c.CommonSize, Root: root, FirstDivergence: c.FirstDivergence, Reason: c.Reason}
}

func (r *Replication) ownReader() (*ledger.Reader, error) {
	return ledger.OpenReader(filepath.Join(r.cfg.DataDir, "ledger"), r.cfg.Identity.ID(), r.cfg.Identity.Public())
}

// Consistency is GET /fleet/v1/audit/consistency?from=N: this node's checkpoint and
// the consistency proof to it from the tree of its first N entries, for its designated
// replicas.
func (r *Replication) Consistency(ctx context.Context, cert *identity.Certificate, fromText string) (*ConsistencyMsg, error) {
	if !r.Designated(cert.NodeID) {
		return nil, fmt.Errorf("%w: consistency proofs are given only to this node's designated replicas", ErrForbidden)
	}
	from, err := strconv.ParseUint(fromText, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("%w: from must be a size", ErrBadRequest)
	}
	rd, err := r.ownReader()
	if err != nil {
		return nil, err
	}
	ans := &ConsistencyMsg{Checkpoint: string(rd.Checkpoint().Raw)}
	if from <= rd.Size() {
		if ans.Proof, err = rd.ConsistencyProof(ctx, from); err != nil {
			return nil, err
		}
	}
	return ans, nil
}

// CopyCheckpoint is GET /fleet/v1/audit/copy: the checkpoint of the copy this node
// keeps of the caller's log.
func (r *Replication) CopyCheckpoint(cert *identity.Certificate) (*ConsistencyMsg, error) {
	pub, _, err := cert.Verify()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrForbidden, err)
	}
	rd, err := ledger.OpenReplicaReader(filepath.Join(ReplicasDir(r.cfg.DataDir), cert.NodeID), cert.NodeID, pub)
	if err != nil {
		return nil, fmt.Errorf("%w: this node keeps no verified copy of your log", ErrNotFound)
	}
	return &ConsistencyMsg{Checkpoint: string(rd.Checkpoint().Raw)}, nil
}

// ComparePeer proves that this node and peer hold one history of a log up to their
// common size: peer's log against this node's copy of it, or this node's log against
// peer's copy of it.
func (r *Replication) ComparePeer(ctx context.Context, peer string) (*CompareResult, error) {
	f := r.fleetRef()
	if f == nil {
		return nil, errors.New("this node runs without a fleet: start it with 'sios up --fleet-listen ADDR [--join ADDR]'")
	}
	p, ok := f.Peer(peer)
	if !ok || p.Addr == "" {
		return nil, fmt.Errorf("%s is not a peer this node knows", peer)
	}
	key, ok := r.cfg.FleetLog.Key(peer)
	if !ok {
		return nil, fmt.Errorf("%s's identity is not in the fleet log", peer)
	}
	get := func(path string) (*ConsistencyMsg, error) {
		resp, err := f.Get(ctx, peer, p.Addr, path)
		if err != nil {
			return nil, fmt.Errorf("%s could not be reached: %v", peer, err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(io.LimitReader(resp.Body, MaxProofAnswer+1))
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("%s answered %d: %s", peer, resp.StatusCode, truncate(string(b), 200))
		}
		m, err := parseConsistency(b)
		if err != nil {
			return nil, fmt.Errorf("%s's answer is not a checkpoint and proof: %v", peer, err)
		}
		return m, nil
	}
	copyDir := filepath.Join(ReplicasDir(r.cfg.DataDir), peer)
	if _, err := os.Stat(copyDir); err == nil {
		// This node keeps a copy of peer's log.
		cr, err := ledger.OpenReplicaReader(copyDir, peer, key)
		if err != nil {
			return nil, err
		}
		m, r1 := cr.Size(), cr.Checkpoint().Root
		ans, err := get("/fleet/v1/audit/consistency?from=" + strconv.FormatUint(m, 10))
		if err != nil {
			return nil, err
		}
		live, err := ledger.ParseCheckpoint([]byte(ans.Checkpoint), peer, key)
		if err != nil {
			return nil, fmt.Errorf("%s's checkpoint: %v", peer, err)
		}
		if live.Size >= m {
			return provenOrNot(m, live.Size, ans.Proof, r1, live.Root, "this node's copy", peer+"'s own log")
		}
		pf, err := cr.ConsistencyProof(ctx, live.Size)
		if err != nil {
			return nil, err
		}
		return provenOrNot(live.Size, m, pf, live.Root, r1, peer+"'s own log", "this node's copy")
	}
	if r.Designated(peer) {
		// peer keeps a copy of this node's log.
		ans, err := get("/fleet/v1/audit/copy")
		if err != nil {
			return nil, err
		}
		cp, err := ledger.ParseCheckpoint([]byte(ans.Checkpoint), r.cfg.Identity.ID(), r.cfg.Identity.Public())
		if err != nil {
			return nil, fmt.Errorf("%s's copy: %v", peer, err)
		}
		own, err := r.ownReader()
		if err != nil {
			return nil, err
		}
		if cp.Size > own.Size() {
			return &CompareResult{CommonSize: own.Size(), Reason: fmt.Sprintf("%s's copy holds %d entries signed by this node, but this node's log has only %d: this log lost history", peer, cp.Size, own.Size())}, nil
		}
		pf, err := own.ConsistencyProof(ctx, cp.Size)
		if err != nil {
			return nil, err
		}
		return provenOrNot(cp.Size, own.Size(), pf, cp.Root, own.Checkpoint().Root, peer+"'s copy", "this node's log")
	}
	return nil, fmt.Errorf("this node keeps no copy of %s's log, and %s is not one of its designated replicas", peer, peer)
}

// provenOrNot checks a consistency proof between two signed tree heads.
func provenOrNot(size1, size2 uint64, pf [][]byte, root1, root2 []byte, name1, name2 string) (*CompareResult, error) {
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, size1, size2, pf, root1, root2); err != nil {
		return &CompareResult{CommonSize: size1, Reason: fmt.Sprintf(
			"%s (size %d) and %s (size %d) hold different histories: no consistency proof between their checkpoints (%v); 'sios audit compare --peer NODEID --with DIR' on both copies names the first divergent index",
			name1, size1, name2, size2, err)}, nil
	}
	return &CompareResult{Identical: true, CommonSize: size1, Root: hex.EncodeToString(root1), Reason: fmt.Sprintf(
		"%s (size %d) and %s (size %d): both checkpoints signed by the log's node, and the RFC 6962 consistency proof between them verifies", name1, size1, name2, size2)}, nil
}

// truncate cuts s to at most n bytes on a character boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}
