package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sios-project/sios/fleet"
	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/ledger"
	"github.com/sios-project/sios/replication"
	"github.com/sios-project/sios/witness"
	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

// get fetches a fleet API path as the peer.
func (p *peerClient) get(t *testing.T, path string) (int, []byte) {
	t.Helper()
	resp, err := p.http.Get("https://" + p.addr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// post sends a body to a fleet API path as the peer.
func (p *peerClient) post(t *testing.T, path string, body []byte) (int, string, []byte) {
	t.Helper()
	resp, err := p.http.Post("https://"+p.addr+path, "text/plain", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Content-Type"), b
}

// publicKeyOf reads a node's public keys from its enrolment certificate.
func publicKeyOf(t *testing.T, dir string) (node, root identity.PublicKey) {
	t.Helper()
	cert, err := identity.LoadCertificate(filepath.Join(dir, identity.NodeCertFile))
	if err != nil {
		t.Fatal(err)
	}
	node, root, err = cert.Verify()
	if err != nil {
		t.Fatal(err)
	}
	return node, root
}

// cosignedBy verifies that a checkpoint of source's log carries a cosignature/v1 of
// the witness of node witnessID (key witnessKey), through the formats verifier of its
// vkey and the standard note package.
func cosignedBy(t *testing.T, checkpoint []byte, source string, sourceKey identity.PublicKey, witnessID string, witnessKey identity.PublicKey) {
	t.Helper()
	if _, err := ledger.ParseCheckpoint(checkpoint, source, sourceKey); err != nil {
		t.Fatalf("not %s's checkpoint: %v\n%s", source, err, checkpoint)
	}
	vkey, err := witness.VerifierKey(replication.WitnessName(witnessID), witnessKey.Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	v, err := fnote.NewVerifierForCosignatureV1(vkey)
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Open(checkpoint, note.VerifierList(v))
	if err != nil {
		t.Fatalf("no cosignature of %s verifies: %v\n%s", replication.WitnessName(witnessID), err, checkpoint)
	}
	if len(n.Sigs) != 1 || n.Sigs[0].Name != replication.WitnessName(witnessID) {
		t.Fatalf("verified signatures: %+v", n.Sigs)
	}
	if ts, err := fnote.CoSigV1Timestamp(n.Sigs[0]); err != nil || time.Since(ts) > 5*time.Minute {
		t.Fatalf("cosignature time %v (%v)", ts, err)
	}
}

func TestWitnessReplicaCosignsAndServesAddCheckpoint(t *testing.T) {
	site := newInstitution(t, "a", "b", "c")
	a, b, c := site.dirs[0], site.dirs[1], site.dirs[2]
	idA, idB := nodeIDOf(t, a), nodeIDOf(t, b)
	pubA, root := publicKeyOf(t, a)
	pubB, _ := publicKeyOf(t, b)
	trust := fleet.NewTrust(root)
	ok(t, a, "audit", "replicas", "add", idB, "--cadence", "200ms")
	appendRecords(t, a, 600, 0)

	na := startNode(t, a, "--fleet-listen", "127.0.0.1:0")
	nb := startNode(t, b, "--fleet-listen", "127.0.0.1:0", "--join", na.fleetAddr)

	// B catches up, cosigns what it holds, and A keeps the cosignature of its current
	// checkpoint.
	var fromA replication.ReplicaStatus
	eventually(t, 60*time.Second, "A holds B's cosignature of its current checkpoint", func() (bool, string) {
		for _, s := range replicaStatuses(t, a) {
			if s.NodeID == idB && s.Role == "replica" {
				fromA = s
			}
		}
		return fromA.State == "ok" && fromA.LagRecords == 0 && fromA.Cosigned && fromA.CosignedSize == fromA.Size && fromA.Size >= 600, fmt.Sprintf("%+v", fromA)
	})
	var copyOnB replication.ReplicaStatus
	for _, s := range replicaStatuses(t, b) {
		if s.NodeID == idA && s.Role == "source" {
			copyOnB = s
		}
	}
	if !copyOnB.Cosigned || copyOnB.CosignedSize < fromA.Size {
		t.Fatalf("B's view of its copy of A: %+v", copyOnB)
	}

	// Any peer fetches A's checkpoint with B's cosignature appended.
	pc := newPeerClient(t, c, na.fleetAddr, trust)
	status, cp := pc.get(t, "/fleet/v1/audit/checkpoint")
	if status != http.StatusOK {
		t.Fatalf("GET /fleet/v1/audit/checkpoint: %d %s", status, cp)
	}
	cosignedBy(t, cp, idA, pubA, idB, pubB)
	if !strings.Contains(string(cp), fmt.Sprintf("\n%d\n", fromA.CosignedSize)) {
		t.Fatalf("served checkpoint is not of size %d:\n%s", fromA.CosignedSize, cp)
	}

	// B is a tlog-witness of A for any peer: stop A so that only add-checkpoint moves
	// B's witness, and grow A's log behind it.
	na.stop(t)
	witnessed := func() uint64 {
		for _, s := range replicaStatuses(t, b) {
			if s.NodeID == idA && s.Role == "source" {
				return s.CosignedSize
			}
		}
		return 0
	}
	var cosigned uint64
	eventually(t, 10*time.Second, "B's witness settles", func() (bool, string) {
		before := witnessed()
		time.Sleep(300 * time.Millisecond)
		cosigned = witnessed()
		return cosigned == before, fmt.Sprint(before, cosigned)
	})
	appendRecords(t, a, 300, 600)
	rd := openTestReader(t, a)
	if rd.Size() <= cosigned {
		t.Fatalf("A's log at %d, B cosigned %d", rd.Size(), cosigned)
	}
	proof, err := rd.ConsistencyProof(context.Background(), cosigned)
	if err != nil {
		t.Fatal(err)
	}
	latest := rd.Checkpoint().Raw
	pb := newPeerClient(t, c, nb.fleetAddr, trust)
	req := (&witness.Request{Old: cosigned, Proof: proof, Checkpoint: latest}).Marshal()

	status, ctype, body := pb.post(t, replication.WitnessPrefix+"/add-checkpoint", (&witness.Request{Old: 0, Checkpoint: latest}).Marshal())
	if status != http.StatusConflict || ctype != "text/x.tlog.size" || string(body) != fmt.Sprintf("%d\n", cosigned) {
		t.Fatalf("add-checkpoint with old 0: %d %q %q", status, ctype, body)
	}
	badProof := [][]byte{bytes.Clone(proof[0])}
	badProof[0][0] ^= 1
	bad := (&witness.Request{Old: cosigned, Proof: append(badProof, proof[1:]...), Checkpoint: latest}).Marshal()
	if status, _, body = pb.post(t, replication.WitnessPrefix+"/add-checkpoint", bad); status != http.StatusUnprocessableEntity {
		t.Fatalf("add-checkpoint with a bad proof: %d %s", status, body)
	}
	status, _, body = pb.post(t, replication.WitnessPrefix+"/add-checkpoint", req)
	if status != http.StatusOK {
		t.Fatalf("add-checkpoint: %d %s", status, body)
	}
	cosignedBy(t, append(bytes.Clone(latest), body...), idA, pubA, idB, pubB)
	status, _, body = pb.post(t, replication.WitnessPrefix+"/add-checkpoint", req) // B has moved on
	if status != http.StatusConflict || string(body) != fmt.Sprintf("%d\n", rd.Size()) {
		t.Fatalf("add-checkpoint again: %d %q", status, body)
	}
	if status, _, _ = pb.post(t, replication.WitnessPrefix+"/add-checkpoint", []byte("old 0\n\nsios/audit/node_unknown\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n— x AAAA\n")); status != http.StatusNotFound {
		t.Fatalf("add-checkpoint of an unknown log: %d", status)
	}

	// The witness state survives B's restart.
	nb.stop(t)
	nb = startNode(t, b, "--fleet-listen", "127.0.0.1:0")
	pb = newPeerClient(t, c, nb.fleetAddr, trust)
	if status, _, body = pb.post(t, replication.WitnessPrefix+"/add-checkpoint", req); status != http.StatusConflict || string(body) != fmt.Sprintf("%d\n", rd.Size()) {
		t.Fatalf("add-checkpoint after B's restart: %d %q", status, body)
	}
}
