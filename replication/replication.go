// Package replication is audit replication between nodes. A node names, in its configuration, the peers that hold copies of
// its audit log and a cadence. Every cadence it tells each replica its latest
// checkpoint (POST /fleet/v1/audit/notify); the replica fetches what it lacks from the
// source's log files (GET /fleet/v1/audit/log/PATH, the tlog-tiles layout, served only
// to designated replicas), verifies everything (ledger.Replica) and keeps a
// byte-identical copy under DIR/replicas/NODEID. A fork stops replication from that
// source and is written to the replica's own audit log.
//
// Witnessing: a replica is a witness (package witness) of every source it keeps a copy
// of. After each verified update it cosigns the checkpoint its copy holds
// (cosignature/v1, its node's Ed25519 key, name WitnessName) and returns the
// cosignature in its notify answer; the source keeps the latest one of each replica
// under DIR/ledger/cosignatures/ and serves its checkpoint with them
// (GET /fleet/v1/audit/checkpoint). The witness also answers the C2SP tlog-witness
// add-checkpoint call on the fleet API for those sources (submission prefix
// WitnessPrefix).
package replication

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sios-project/sios/fleet"
	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/internal/files"
	"github.com/sios-project/sios/jcs"
	"github.com/sios-project/sios/ledger"
	"github.com/sios-project/sios/oar"
	"github.com/sios-project/sios/witness"
	"golang.org/x/mod/sumdb/note"
)

// ReplicaConfig designates a peer that keeps a copy of this node's audit log.
type ReplicaConfig struct {
	Node    string `json:"node"`
	Cadence string `json:"cadence,omitempty"` // a Go duration; default DefaultCadence
}

// DefaultCadence is how often a source tells its replicas its checkpoint.
const DefaultCadence = 5 * time.Second

func (c ReplicaConfig) cadence() time.Duration {
	if d, err := time.ParseDuration(c.Cadence); err == nil && d > 0 {
		return d
	}
	return DefaultCadence
}

// ReplicaStatus is one line of 'sios audit replicas': a peer keeping a copy of this
// node's log (role "replica") or a source whose copy this node keeps (role "source").
type ReplicaStatus struct {
	NodeID       string `json:"node_id"`
	Role         string `json:"role"`
	Size         uint64 `json:"size"`
	Root         string `json:"root,omitempty"`
	LagRecords   uint64 `json:"lag_records"`
	LastVerified string `json:"last_verified,omitempty"`
	State        string `json:"state"`
	// Progress is, while a copy catches up with its source, how far it has verified
	// (ledger.Progress in words); empty otherwise.
	Progress string `json:"progress,omitempty"`
	Error    string `json:"error,omitempty"`
	Cadence  string `json:"cadence,omitempty"`
	// CosignedSize is, for a replica, the size of this node's checkpoint that the
	// replica's latest cosignature kept here is over; for a source, the size of the
	// source's latest checkpoint this node cosigned as its witness. Cosigned says that
	// it is this node's current checkpoint (replica) or the copy's (source).
	CosignedSize uint64 `json:"cosigned_size"`
	Cosigned     bool   `json:"cosigned"`
}

// NotifyMsg is the body of POST /fleet/v1/audit/notify and its answer.
type NotifyMsg struct {
	// Checkpoint is, in the request, the source's latest checkpoint; in the answer, the
	// source's checkpoint that Cosignature is over (the one the replica's copy holds).
	Checkpoint string `json:"checkpoint,omitempty"`
	Size       uint64 `json:"size"` // the replica's verified size (answer)
	Root       string `json:"root,omitempty"`
	State      string `json:"state,omitempty"`
	Error      string `json:"error,omitempty"`
	// Cosignature is the replica's cosignature/v1 note signature line, newline
	// included, over Checkpoint (answer).
	Cosignature string `json:"cosignature,omitempty"`
}

// parseNotify reads a notify message, request or answer, strictly (jcs.DecodeStrict):
// at most MaxNotify bytes, no member repeated, differently cased or unknown.
func parseNotify(b []byte) (*NotifyMsg, error) {
	if len(b) > MaxNotify {
		return nil, fmt.Errorf("%d bytes, more than %d (MaxNotify)", len(b), MaxNotify)
	}
	var m NotifyMsg
	if err := jcs.DecodeStrict(b, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

// readNotify reads a notify answer of at most MaxNotify bytes from r.
func readNotify(r io.Reader) (*NotifyMsg, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxNotify+1))
	if err != nil {
		return nil, err
	}
	return parseNotify(b)
}

// Fleet is what replication needs of the fleet (fleet.Fleet).
type Fleet interface {
	Peer(node string) (fleet.Peer, bool)
	Post(ctx context.Context, node, addr, path string, body []byte) (*http.Response, error)
	Get(ctx context.Context, node, addr, path string) (*http.Response, error)
}

// Config is what replication needs of the node.
type Config struct {
	DataDir  string
	Identity *identity.Node
	// FleetLog holds the peers' verified identities (their keys).
	FleetLog *fleet.Log
	// LogSize is the number of entries in this node's log (ledger.Ledger.Size).
	LogSize func() uint64
	// Audit appends a record to this node's log (a fork alert).
	Audit func(ctx context.Context, rec *oar.Record) error
	Log   *slog.Logger
	// Replicas are the peers designated to keep copies of this node's log.
	Replicas []ReplicaConfig
	// ReplicateFor lists the nodes or roots of other institutions this node keeps
	// copies for.
	ReplicateFor []string
}

// Replication is a node's audit replication: the replicas of its own log, the copies it
// keeps of others', and its witness. It is safe for concurrent use.
type Replication struct {
	cfg   Config
	ctx   context.Context
	stop  context.CancelFunc
	fleet Fleet // set by Start
	wg    sync.WaitGroup

	wit        *witness.Witness // nil if it could not be set up (logged)
	witHandler http.Handler

	mu      sync.Mutex
	targets map[string]*replicaTarget // guarded by mu; replicas of this node
	copies  map[string]*sourceCopy    // guarded by mu; copies this node keeps
	cosigs  map[string]*cosignature   // guarded by mu; by replica, of this node's log
}

// cosignature is a replica's latest cosignature of this node's checkpoint.
type cosignature struct {
	size       uint64
	body       string // the checkpoint's note text
	checkpoint []byte // the checkpoint as this node signed it
	line       []byte // the replica's signature line
}

type replicaTarget struct {
	cfg    ReplicaConfig
	cancel context.CancelFunc
	status ReplicaStatus // guarded by Replication.mu
}

type sourceCopy struct {
	rep      *ledger.Replica
	running  bool   // an update is in progress; guarded by Replication.mu
	again    bool   // a notification came during it; guarded by Replication.mu
	notified uint64 // size of the latest checkpoint the source announced; guarded
	status   ReplicaStatus
	cosigned []byte // the copy's checkpoint as this node's witness cosigned it; guarded
	cosig    []byte // that cosignature line; guarded
}

// ReplicasDir is where a node keeps copies of other nodes' audit logs.
func ReplicasDir(dataDir string) string { return filepath.Join(dataDir, "replicas") }

// WitnessDir is where a node's witness keeps the latest checkpoint it cosigned of each
// log (package witness).
func WitnessDir(dataDir string) string { return filepath.Join(dataDir, "witness") }

// CosignaturesDir is where a node keeps the latest cosignature of its checkpoint by
// each replica: a file per replica node id, holding the checkpoint followed by the
// cosignature line (a signed note).
func CosignaturesDir(dataDir string) string { return filepath.Join(dataDir, "ledger", "cosignatures") }

// WitnessPrefix is the tlog-witness submission prefix of a node's witness on the fleet
// API: add-checkpoint is POST https://<fleet address>/fleet/v1/witness/add-checkpoint.
const WitnessPrefix = "/fleet/v1/witness"

// WitnessName is the cosigner name of a node's witness: the key name of its
// cosignatures.
func WitnessName(nodeID string) string { return "sios/witness/" + nodeID }

// New prepares replication; its serving methods may be called as soon as the fleet
// listens, its notifications start with Start. Stop ends it.
func New(cfg Config) *Replication {
	ctx, stop := context.WithCancel(context.Background())
	r := &Replication{cfg: cfg, ctx: ctx, stop: stop, targets: map[string]*replicaTarget{}, copies: map[string]*sourceCopy{}, cosigs: map[string]*cosignature{}}
	signer, err := witness.NewSigner(WitnessName(cfg.Identity.ID()), cfg.Identity.Key.Ed25519())
	if err == nil {
		r.wit, err = witness.New(WitnessDir(cfg.DataDir), signer)
	}
	if err != nil {
		cfg.Log.Error("witness: this node cosigns no checkpoints", "err", err)
	} else {
		r.witHandler = http.StripPrefix(WitnessPrefix, witness.Handler(r.wit))
		r.witnessCopies()
	}
	r.loadCosignatures()
	return r
}

// witnessCopies makes the witness know the sources whose copies this node keeps, so
// that add-checkpoint serves them before they next notify.
func (r *Replication) witnessCopies() {
	certs, _ := filepath.Glob(filepath.Join(ReplicasDir(r.cfg.DataDir), identity.NodePrefix+"_*.cert"))
	for _, p := range certs {
		cert, err := identity.LoadCertificate(p)
		if err != nil {
			r.cfg.Log.Warn("witness", "certificate", p, "err", err)
			continue
		}
		if pub, _, err := cert.Verify(); err != nil {
			r.cfg.Log.Warn("witness", "certificate", p, "err", err)
		} else {
			r.witnessLog(cert.NodeID, pub)
		}
	}
}

// witnessLog makes the witness know the log of source.
func (r *Replication) witnessLog(source string, pub identity.PublicKey) {
	if r.wit == nil {
		return
	}
	origin := ledger.Origin(source)
	ed, ml := pub.NoteVerifiers(origin)
	if err := r.wit.AddLog(origin, ed, ml); err != nil {
		r.cfg.Log.Error("witness", "source", source, "err", err)
	}
}

// WitnessHandler serves the C2SP tlog-witness add-checkpoint call (under
// WitnessPrefix) for the logs this node keeps copies of; nil when the witness could not
// be set up.
func (r *Replication) WitnessHandler() http.Handler { return r.witHandler }

// Start starts telling the designated replicas this node's checkpoint.
func (r *Replication) Start(f Fleet) {
	r.mu.Lock()
	r.fleet = f
	r.mu.Unlock()
	for _, c := range r.cfg.Replicas {
		r.addTarget(c)
	}
}

func (r *Replication) fleetRef() Fleet {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.fleet
}

// Stop ends notifications and updates, and waits for them.
func (r *Replication) Stop() {
	r.stop()
	r.wg.Wait()
}

func (r *Replication) addTarget(c ReplicaConfig) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if old := r.targets[c.Node]; old != nil {
		old.cancel()
	}
	ctx, cancel := context.WithCancel(r.ctx)
	t := &replicaTarget{cfg: c, cancel: cancel, status: ReplicaStatus{NodeID: c.Node, Role: "replica", State: "starting", Cadence: c.cadence().String()}}
	r.targets[c.Node] = t
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.notifyLoop(ctx, t)
	}()
}

func (r *Replication) removeTarget(node string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	t := r.targets[node]
	if t == nil {
		return false
	}
	t.cancel()
	delete(r.targets, node)
	return true
}

// notifyLoop tells one replica this node's checkpoint every cadence.
func (r *Replication) notifyLoop(ctx context.Context, t *replicaTarget) {
	tick := time.NewTicker(t.cfg.cadence())
	defer tick.Stop()
	for {
		r.notifyOnce(ctx, t)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (r *Replication) notifyOnce(ctx context.Context, t *replicaTarget) {
	set := func(f func(s *ReplicaStatus)) {
		r.mu.Lock()
		f(&t.status)
		r.mu.Unlock()
	}
	cp, err := os.ReadFile(filepath.Join(r.cfg.DataDir, "ledger", "log", "checkpoint"))
	if err != nil {
		set(func(s *ReplicaStatus) { s.State, s.Error = "error", "no checkpoint yet" })
		return
	}
	f := r.fleetRef()
	if f == nil {
		return
	}
	peer, ok := f.Peer(t.cfg.Node)
	if !ok || peer.State == fleet.StateDead || peer.Addr == "" {
		set(func(s *ReplicaStatus) { s.State, s.Error = "unreachable", "the replica is not a live fleet member" })
		return
	}
	body, _ := json.Marshal(NotifyMsg{Checkpoint: string(cp)})
	if len(body) > MaxNotify {
		set(func(s *ReplicaStatus) {
			s.State, s.Error = "error", fmt.Sprintf("the notify message is %d bytes, more than a replica reads (MaxNotify %d)", len(body), MaxNotify)
		})
		return
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := f.Post(cctx, t.cfg.Node, peer.Addr, "/fleet/v1/audit/notify", body)
	if err != nil {
		set(func(s *ReplicaStatus) { s.State, s.Error = "unreachable", err.Error() })
		return
	}
	defer resp.Body.Close()
	ans, err := readNotify(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		msg := fmt.Sprintf("replica answered %d", resp.StatusCode)
		switch {
		case err != nil && resp.StatusCode == http.StatusOK:
			msg = "replica's answer: " + err.Error()
		case err == nil && ans.Error != "":
			msg = ans.Error
		}
		set(func(s *ReplicaStatus) { s.State, s.Error = "refused", msg })
		return
	}
	if ans.Cosignature != "" {
		if err := r.collect(t.cfg.Node, *ans); err != nil {
			r.cfg.Log.Warn("cosignature refused", "replica", t.cfg.Node, "err", err)
		}
	}
	size := r.cfg.LogSize()
	set(func(s *ReplicaStatus) {
		s.Size, s.Root, s.State, s.Error = ans.Size, ans.Root, ans.State, ans.Error
		s.LagRecords = 0
		if size > ans.Size {
			s.LagRecords = size - ans.Size
		}
		if ans.State == "ok" {
			s.LastVerified = time.Now().UTC().Format(time.RFC3339)
		}
	})
}

// collect keeps a replica's cosignature of this node's checkpoint, once the checkpoint
// proves to be this node's and the cosignature verifies with the replica's key under
// its witness name. A cosignature of a smaller checkpoint than the one kept is dropped.
func (r *Replication) collect(replica string, ans NotifyMsg) error {
	cp, err := ledger.ParseCheckpoint([]byte(ans.Checkpoint), r.cfg.Identity.ID(), r.cfg.Identity.Public())
	if err != nil {
		return fmt.Errorf("the checkpoint it cosigned is not this node's: %v", err)
	}
	line := ans.Cosignature
	if len(line) > maxCosignatureLine || !strings.HasPrefix(line, "— "+WitnessName(replica)+" ") || strings.Index(line, "\n") != len(line)-1 {
		return fmt.Errorf("the cosignature is not one signature line of %s", WitnessName(replica))
	}
	key, ok := r.cfg.FleetLog.Key(replica)
	if !ok {
		return errors.New("the fleet log holds no key of the replica")
	}
	v, err := witness.NewVerifier(WitnessName(replica), key.Ed25519)
	if err != nil {
		return err
	}
	signed := append(slices.Clone(cp.Raw), line...)
	n, err := note.Open(signed, note.VerifierList(v))
	if err != nil {
		return fmt.Errorf("the cosignature does not verify: %v", err)
	}
	c := &cosignature{size: cp.Size, body: n.Text, checkpoint: cp.Raw, line: []byte(line)}
	r.mu.Lock()
	old := r.cosigs[replica]
	if old != nil && old.size > c.size {
		r.mu.Unlock()
		return nil
	}
	r.cosigs[replica] = c
	r.mu.Unlock()
	if old != nil && old.body == c.body {
		return nil // the same checkpoint: the newer time is kept in memory only
	}
	if err := os.MkdirAll(CosignaturesDir(r.cfg.DataDir), 0o700); err != nil {
		return err
	}
	return files.Replace(filepath.Join(CosignaturesDir(r.cfg.DataDir), replica), signed, 0o600)
}

// loadCosignatures reads the cosignatures this node kept of its checkpoints.
func (r *Replication) loadCosignatures() {
	files, _ := filepath.Glob(filepath.Join(CosignaturesDir(r.cfg.DataDir), identity.NodePrefix+"_*"))
	for _, p := range files {
		replica := filepath.Base(p)
		raw, err := os.ReadFile(p)
		if err != nil || len(raw) > ledger.MaxCheckpointSize+maxCosignatureLine {
			r.cfg.Log.Warn("cosignatures", "file", p, "err", err)
			continue
		}
		prefix := []byte("\n— " + WitnessName(replica) + " ")
		i := bytes.LastIndex(raw, prefix)
		if i < 0 {
			r.cfg.Log.Warn("cosignatures", "file", p, "err", "no cosignature line of "+WitnessName(replica))
			continue
		}
		cp, err := ledger.ParseCheckpoint(raw[:i+1], r.cfg.Identity.ID(), r.cfg.Identity.Public())
		if err != nil {
			r.cfg.Log.Warn("cosignatures", "file", p, "err", err)
			continue
		}
		body, _, _ := strings.Cut(string(cp.Raw), "\n\n")
		r.cosigs[replica] = &cosignature{size: cp.Size, body: body + "\n", checkpoint: cp.Raw, line: raw[i+1:]}
	}
}

// CosignedCheckpoint is this node's newest checkpoint that replicas cosigned, with
// their cosignatures appended as signature lines; this node's current checkpoint when
// none did. Any trusted peer may ask for it.
func (r *Replication) CosignedCheckpoint() ([]byte, error) {
	if b := r.cosignedCheckpoint(); b != nil {
		return b, nil
	}
	b, err := os.ReadFile(filepath.Join(r.cfg.DataDir, "ledger", "log", "checkpoint"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: this node has no checkpoint yet", ErrNotFound)
	}
	return b, err
}

func (r *Replication) cosignedCheckpoint() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	var newest *cosignature
	for _, c := range r.cosigs {
		if newest == nil || c.size > newest.size {
			newest = c
		}
	}
	if newest == nil {
		return nil
	}
	out := slices.Clone(newest.checkpoint)
	for _, id := range slices.Sorted(maps.Keys(r.cosigs)) {
		if c := r.cosigs[id]; c.body == newest.body {
			out = append(out, c.line...)
		}
	}
	return out
}

// allowedSource says whether this node keeps a copy for node: one of its own
// institution, or one the operator listed (by node or root id) in replicate_for.
func (r *Replication) allowedSource(cert *identity.Certificate) bool {
	return cert.RootID == r.cfg.Identity.Cert.RootID || slices.Contains(r.cfg.ReplicateFor, cert.NodeID) || slices.Contains(r.cfg.ReplicateFor, cert.RootID)
}

// Notify is POST /fleet/v1/audit/notify from the source cert: it announces its
// checkpoint (body is a NotifyMsg), and the answer says how far this node's verified
// copy is, with this node's cosignature of the copy's checkpoint. A failure of this
// node's own is logged here and reported to the source without its detail.
func (r *Replication) Notify(cert *identity.Certificate, body []byte) (*NotifyMsg, error) {
	if !r.allowedSource(cert) {
		return nil, fmt.Errorf("%w: this node keeps no copies for %s of institution %s (config replicate_for)", ErrForbidden, cert.NodeID, cert.RootID)
	}
	req, err := parseNotify(body)
	if err != nil {
		return nil, fmt.Errorf("%w: body: %v", ErrBadRequest, err)
	}
	pub, _, err := cert.Verify()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrForbidden, err)
	}
	cp, err := ledger.ParseCheckpoint([]byte(req.Checkpoint), cert.NodeID, pub)
	if err != nil {
		return nil, fmt.Errorf("%w: checkpoint: %v", ErrBadRequest, err)
	}
	sc, err := r.copyOf(cert, pub)
	if err != nil {
		r.cfg.Log.Error("replica", "source", cert.NodeID, "err", err)
		return nil, errors.New("the replica could not open its copy")
	}
	r.mu.Lock()
	sc.notified = max(sc.notified, cp.Size)
	r.mu.Unlock()
	r.kick(cert.NodeID, sc)
	r.mu.Lock()
	st, cosigned, cosig := sc.status, sc.cosigned, sc.cosig
	r.mu.Unlock()
	if st.State == "error" {
		// The detail is this node's own (it may name its files): the source learns only
		// that the copy did not update.
		st.Error = "the replica could not update its copy; its operator can see why in its log"
	}
	return &NotifyMsg{Size: st.Size, Root: st.Root, State: st.State, Error: st.Error, Checkpoint: string(cosigned), Cosignature: string(cosig)}, nil
}

// copyOf opens (once) the copy of a source's log.
func (r *Replication) copyOf(cert *identity.Certificate, pub identity.PublicKey) (*sourceCopy, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if sc := r.copies[cert.NodeID]; sc != nil {
		return sc, nil
	}
	dir := filepath.Join(ReplicasDir(r.cfg.DataDir), cert.NodeID)
	if err := os.MkdirAll(ReplicasDir(r.cfg.DataDir), 0o700); err != nil {
		return nil, err
	}
	// The source's enrolment certificate, beside the copy: an evidence bundle of the
	// copy carries it, so that it verifies without this node.
	cb, _ := json.Marshal(cert)
	if err := files.Replace(dir+".cert", cb, 0o600); err != nil {
		return nil, err
	}
	rep, err := ledger.OpenReplica(dir, cert.NodeID, pub)
	if err != nil {
		return nil, err
	}
	r.witnessLog(cert.NodeID, pub)
	sc := &sourceCopy{rep: rep, status: ReplicaStatus{NodeID: cert.NodeID, Role: "source", Size: rep.Size(), Root: hex.EncodeToString(rep.Root()), State: "ok"}}
	if halted, fe := rep.Halted(); halted {
		sc.status.State, sc.status.Error = "forked", fe.Error()
	}
	r.copies[cert.NodeID] = sc
	return sc, nil
}

// kick starts an update of a copy unless one runs; then it runs once more.
func (r *Replication) kick(node string, sc *sourceCopy) {
	r.mu.Lock()
	if sc.running {
		sc.again = true
		r.mu.Unlock()
		return
	}
	sc.running = true
	r.mu.Unlock()
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for {
			r.update(node, sc)
			r.mu.Lock()
			if !sc.again || r.ctx.Err() != nil {
				sc.running = false
				r.mu.Unlock()
				return
			}
			sc.again = false
			r.mu.Unlock()
		}
	}()
}

// ProgressLogEvery is how often a copy catching up with its source logs its progress.
const ProgressLogEvery = 10 * time.Second

// update brings a copy up to its source's checkpoint, verifying everything.
func (r *Replication) update(node string, sc *sourceCopy) {
	if halted, _ := sc.rep.Halted(); halted {
		return
	}
	f := r.fleetRef()
	if f == nil {
		return
	}
	peer, ok := f.Peer(node)
	if !ok || peer.Addr == "" {
		return
	}
	fetch := func(ctx context.Context, path string) ([]byte, error) {
		resp, err := f.Get(ctx, node, peer.Addr, "/fleet/v1/audit/log/"+path)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		if resp.StatusCode == http.StatusNotFound {
			return nil, fmt.Errorf("%s: %w", path, fs.ErrNotExist)
		}
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("%s: source answered %d", path, resp.StatusCode)
		}
		b, err := io.ReadAll(io.LimitReader(resp.Body, maxLogFile+1))
		if err == nil && len(b) > maxLogFile {
			err = fmt.Errorf("%s: more than %d bytes", path, maxLogFile)
		}
		return b, err
	}
	ctx, cancel := context.WithTimeout(r.ctx, 10*time.Minute)
	defer cancel()
	// A long catch-up shows how far it has got in the status (sios audit replicas, the
	// console) and, every ProgressLogEvery, in the node's log.
	lastLog := time.Now()
	progress := func(p ledger.Progress) {
		r.mu.Lock()
		sc.status.Progress = p.String()
		r.mu.Unlock()
		if p.Done < p.Total && time.Since(lastLog) >= ProgressLogEvery {
			r.cfg.Log.Info("replication catching up", "source", node, "progress", p.String())
			lastLog = time.Now()
		}
	}
	_, err := sc.rep.UpdateWith(ctx, fetch, ledger.UpdateOptions{MaxEntries: replicaBatch, Progress: progress})
	r.mu.Lock()
	st := &sc.status
	st.Progress = ""
	st.Size, st.Root = sc.rep.Size(), hex.EncodeToString(sc.rep.Root())
	st.LagRecords = 0
	if sc.notified > st.Size {
		st.LagRecords = sc.notified - st.Size
	}
	var fe *ledger.ForkError
	switch {
	case err == nil:
		st.State, st.Error, st.LastVerified = "ok", "", time.Now().UTC().Format(time.RFC3339)
	case errors.As(err, &fe):
		st.State, st.Error = "forked", fe.Error()
	default:
		st.State, st.Error = "error", err.Error()
	}
	r.mu.Unlock()
	if err == nil {
		r.cosignCopy(ctx, node, sc)
	}
	if fe != nil {
		r.auditFork(node, fe)
	}
	if err != nil && fe == nil && !errors.Is(err, ledger.ErrHalted) {
		r.cfg.Log.Warn("replication", "source", node, "err", err)
	}
}

// cosignCopy cosigns, as this node's witness, the source's checkpoint its copy holds.
// The witness asks the copy for the consistency proof from the checkpoint it cosigned
// before, and refuses a checkpoint smaller than that one (possible when a peer used
// add-checkpoint with a newer one: the copy cosigns again once it catches up).
func (r *Replication) cosignCopy(ctx context.Context, node string, sc *sourceCopy) {
	cp := sc.rep.Checkpoint()
	if r.wit == nil || cp == nil {
		return
	}
	line, err := r.wit.Cosign(ctx, cp, func(ctx context.Context, old uint64) ([][]byte, error) {
		rd, err := sc.rep.Reader()
		if err != nil {
			return nil, err
		}
		return rd.ConsistencyProof(ctx, old)
	})
	var conflict *witness.ConflictError
	switch {
	case err == nil:
		r.mu.Lock()
		sc.cosigned, sc.cosig = cp, line
		r.mu.Unlock()
	case errors.As(err, &conflict) && conflict.Size > sc.rep.Size():
	default:
		r.cfg.Log.Warn("witness: the copy's checkpoint is not cosigned", "source", node, "err", err)
	}
}

// auditFork writes the alert for a source that presented another history.
func (r *Replication) auditFork(source string, fe *ledger.ForkError) {
	detail := map[string]any{"reason": fe.Reason, "evidence": filepath.Join(ReplicasDir(r.cfg.DataDir), source, ".replica", "evidence")}
	if err := r.cfg.Audit(context.Background(), &oar.Record{
		Actor: oar.Actor{ID: "node"}, Action: oar.ActionReplicaFork, Resource: "node/" + source,
		Decision: &oar.Decision{Effect: "deny", Policies: []string{"replica-consistency"}},
		Inputs:   []oar.Digest{oar.DigestOf("old_checkpoint", fe.Old), oar.DigestOf("new_checkpoint", fe.New)},
		Detail:   mustJSON(detail),
	}); err != nil {
		r.cfg.Log.Error("audit replica fork", "err", err)
	}
	r.cfg.Log.Error("replication stopped: the source presented a different history", "source", source, "reason", fe.Reason)
}

// LogFile is GET /fleet/v1/audit/log/PATH: this node's log files, in the tlog-tiles
// layout, for its designated replicas only.
func (r *Replication) LogFile(cert *identity.Certificate, p string) ([]byte, error) {
	r.mu.Lock()
	_, designated := r.targets[cert.NodeID]
	r.mu.Unlock()
	if !designated {
		return nil, fmt.Errorf("%w: this node's audit log is served only to the replicas its operator designated", ErrForbidden)
	}
	if !validLogPath(p) {
		return nil, fmt.Errorf("%w: not a log file path", ErrBadRequest)
	}
	b, err := os.ReadFile(filepath.Join(r.cfg.DataDir, "ledger", "log", filepath.FromSlash(p)))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: no such file", ErrNotFound)
	}
	return b, err
}

// validLogPath accepts "checkpoint" and paths under tile/ made of the characters the
// tlog-tiles layout uses, with no empty, "." or ".." element.
func validLogPath(p string) bool {
	if p == "checkpoint" {
		return true
	}
	if !strings.HasPrefix(p, "tile/") || len(p) > 128 {
		return false
	}
	for _, el := range strings.Split(p, "/") {
		if el == "" || el == "." || el == ".." {
			return false
		}
	}
	for _, c := range []byte(p) {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c == '/' || c == '.') {
			return false
		}
	}
	return true
}

// OpenCopy opens the copy this node keeps of source's log, with the source's enrolment
// certificate, read-only use (export, verify): no node need run.
func OpenCopy(dataDir, source string) (*ledger.Replica, *identity.Certificate, error) {
	dir := filepath.Join(ReplicasDir(dataDir), source)
	if _, err := os.Stat(dir); err != nil {
		return nil, nil, fmt.Errorf("this node keeps no copy of %s's audit log (%s)", source, dir)
	}
	cert, err := identity.LoadCertificate(dir + ".cert")
	if err != nil {
		return nil, nil, err
	}
	pub, _, err := cert.Verify()
	if err != nil {
		return nil, nil, err
	}
	rep, err := ledger.OpenReplica(dir, source, pub)
	if err != nil {
		return nil, nil, err
	}
	return rep, &cert, nil
}

// Statuses lists the replicas of this node and the copies it keeps.
func (r *Replication) Statuses() []ReplicaStatus {
	current, _ := os.ReadFile(filepath.Join(r.cfg.DataDir, "ledger", "log", "checkpoint"))
	body, _, _ := strings.Cut(string(current), "\n\n")
	r.mu.Lock()
	out := []ReplicaStatus{}
	for id, t := range r.targets {
		s := t.status
		if c := r.cosigs[id]; c != nil {
			s.CosignedSize, s.Cosigned = c.size, c.body == body+"\n"
		}
		out = append(out, s)
	}
	for _, sc := range r.copies {
		out = append(out, sc.status)
	}
	r.mu.Unlock()
	for i, s := range out {
		if s.Role == "source" && r.wit != nil {
			size, root, ok := r.wit.Cosigned(ledger.Origin(s.NodeID))
			out[i].CosignedSize = size
			out[i].Cosigned = ok && size == s.Size && hex.EncodeToString(root) == s.Root
		}
	}
	slices.SortFunc(out, func(a, b ReplicaStatus) int {
		return strings.Compare(a.Role+a.NodeID, b.Role+b.NodeID)
	})
	return out
}

// SetReplica designates (or, with remove, withdraws) a replica of this node's log in
// the running node; the caller has recorded it in the node's configuration.
func (r *Replication) SetReplica(c ReplicaConfig, remove bool) {
	if remove {
		r.removeTarget(c.Node)
		return
	}
	r.addTarget(c)
}

// Designated says whether node is a designated replica of this node's log.
func (r *Replication) Designated(node string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.targets[node]
	return ok
}

// check refuses a replica designation the node could not honour.
func (c ReplicaConfig) Check() error {
	if !strings.HasPrefix(c.Node, identity.NodePrefix+"_") {
		return fmt.Errorf("replica %q is not a node id (node_…)", c.Node)
	}
	if c.Cadence != "" {
		if d, err := time.ParseDuration(c.Cadence); err != nil || d <= 0 {
			return fmt.Errorf("replica %s: cadence %q is not a positive duration such as \"5s\"", c.Node, c.Cadence)
		}
	}
	return nil
}

// Errors the serving methods return, for the fleet API to answer with the right status.
// Their text is for the peer; anything else is this node's own failure, which the
// fleet API logs and answers without its detail.
var (
	ErrForbidden  = errors.New("forbidden")
	ErrNotFound   = errors.New("not found")
	ErrBadRequest = errors.New("bad request")
)

// Resume is the operator's action after a source forked: replication from it resumes
// (the evidence stays). The copy keeps the history it verified; a source that still
// presents the other history forks again.
func (r *Replication) Resume(source string) error {
	r.mu.Lock()
	sc := r.copies[source]
	r.mu.Unlock()
	if sc == nil {
		return ResumeCopy(r.cfg.DataDir, source)
	}
	if err := sc.rep.Resume(); err != nil {
		return err
	}
	r.mu.Lock()
	sc.status.State, sc.status.Error = "resumed", ""
	r.mu.Unlock()
	return nil
}

// ResumeCopy resumes replication into the copy of source's log kept in dataDir, with no
// node running.
func ResumeCopy(dataDir, source string) error {
	rep, _, err := OpenCopy(dataDir, source)
	if err != nil {
		return err
	}
	return rep.Resume()
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
