package fleet

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/jcs"
)

// Timing tunes membership. The defaults suit a LAN or loopback fleet of up to a few
// hundred nodes: with 50 nodes a failed node is suspected within about a second and
// declared dead about 2.7 s later (Lifeguard shortens the suspicion as peers confirm it).
// Measured with 'sios bench fleet' (50 nodes, 2 cores): every member marks a killed
// node dead within 3.4–3.5 s; with a 500 ms probe interval it took 4.2–5.6 s.
type Timing struct {
	ProbeInterval    time.Duration
	ProbeTimeout     time.Duration
	GossipInterval   time.Duration
	GossipNodes      int
	SuspicionMult    int
	PushPullInterval time.Duration
	RejoinInterval   time.Duration // how often a node alone retries its join addresses
}

// DefaultTiming is the membership timing of a node.
var DefaultTiming = Timing{
	ProbeInterval:    400 * time.Millisecond,
	ProbeTimeout:     200 * time.Millisecond,
	GossipInterval:   100 * time.Millisecond,
	GossipNodes:      4,
	SuspicionMult:    4,
	PushPullInterval: 10 * time.Second,
	RejoinInterval:   5 * time.Second,
}

// Refusal is a peer this node would not admit, for the audit log.
type Refusal struct {
	Node   string // the node id it claimed, when known
	Addr   string // where it connected from or was said to be
	Reason string
}

// Config builds a Fleet.
type Config struct {
	Node      *identity.Node
	Publisher *Publisher // the node's own feed
	Log       *Log       // the fleet-wide log; the own feed is added to it
	Archive   *Archive   // where the log is kept on disk (nil: memory only)
	Trust     func() Trust
	Listen    string   // fleet address to bind, host:port
	Advertise string   // fleet address peers dial (default: the bound one)
	Join      []string // addresses of any peers to join
	// Refused is told about each peer refused admission (at the TLS handshake, or a
	// gossiped member whose identity does not verify) and each TPM attestation refused.
	// It must not block for long.
	Refused func(Refusal)
	// Attested, if set, is told about each peer's TPM attestation checked fresh (see
	// Attest). It must not block for long.
	Attested func(Attested)
	// AllowPeer, if set, is consulted before every connection to or from a peer address
	// (see TransportConfig.AllowPeer).
	AllowPeer func(addr string) error
	// Handler serves the rest of the fleet API (paths under /fleet/v1/ other than sync).
	Handler http.Handler
	Logger  *slog.Logger
	Timing  Timing // zero: DefaultTiming
}

// Fleet is this node's membership in the fleet: SWIM failure detection and gossip
// (memberlist) over mutual TLS, the fleet-wide log kept by gossip and anti-entropy, and
// the fleet API server. A peer is admitted only after its identity record verifies under
// a pinned root; every connection proves the identity at the TLS handshake.
type Fleet struct {
	cfg      Config
	log      *slog.Logger
	verifier *PeerVerifier
	tr       *Transport
	ml       *memberlist.Memberlist
	queue    *memberlist.TransmitLimitedQueue
	httpSrv  *http.Server
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup

	mu       sync.Mutex
	peers    map[string]*peerState // guarded by mu; by node id
	pending  map[string]time.Time  // guarded by mu; members awaiting identity checks, by node id: last attempt
	clients  map[string]*http.Client
	cert     tls.Certificate         // guarded by mu; renewed before it expires
	tlsConfs map[string]*tls.Config  // guarded by mu; client configurations by node and ALPN name
	changed  chan struct{}           // closed and replaced when peers or the log change; guarded by mu
	refusals map[string]time.Time    // guarded by mu; last audited refusal by node/addr
	digests  map[string]Digest       // guarded by mu; the last digest each peer sent, by node@addr
	attest   map[string]*attestState // guarded by mu; peers' TPM attestations, by node id
}

type peerState struct {
	addr  string
	state string
	since time.Time
	rtt   time.Duration // smoothed probe round trip; 0 until measured
	gap   time.Time     // when a gossiped record of this node last started a sync to fill a gap
}

// Peer states as `sios fleet peers` reports them.
const (
	StateAlive   = "alive"
	StateSuspect = "suspect"
	StateDead    = "dead"
)

// Start binds the fleet listener, starts membership and the fleet API, and joins the
// given peers: first exchanging federation records with each (so that both sides know
// the other's identity before memberlist asks), then joining their memberlist. Peers
// that cannot be reached are retried in the background: the node serves regardless.
func Start(ctx context.Context, cfg Config) (*Fleet, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Timing == (Timing{}) {
		cfg.Timing = DefaultTiming
	}
	f := &Fleet{
		cfg: cfg, log: cfg.Logger, peers: map[string]*peerState{}, pending: map[string]time.Time{},
		clients: map[string]*http.Client{}, changed: make(chan struct{}), refusals: map[string]time.Time{},
		attest: map[string]*attestState{},
	}
	for _, rec := range cfg.Publisher.Records(0) {
		if _, err := cfg.Log.Add(rec, cfg.Trust()); err != nil {
			return nil, fmt.Errorf("own feed: %v", err)
		}
	}
	f.save(cfg.Node.ID())
	var err error
	if f.cert, err = NewTLSCertificate(cfg.Node, time.Now()); err != nil {
		return nil, err
	}
	f.verifier = NewPeerVerifier(cfg.Trust)
	f.tr, err = NewTransport(TransportConfig{
		Listen: cfg.Listen, Advertise: cfg.Advertise, Logger: cfg.Logger,
		ServerTLS: ServerTLSConfig(f.cert, cfg.Trust, Protos, f.refusedHandshake),
		ClientTLS: f.clientTLS, AllowPeer: cfg.AllowPeer,
	})
	if err != nil {
		return nil, err
	}
	f.ctx, f.cancel = context.WithCancel(context.Background())
	f.wg.Add(1)
	go f.renewCertificate()

	mux := http.NewServeMux()
	mux.HandleFunc("POST /fleet/v1/sync", f.handleSync)
	if cfg.Handler != nil {
		mux.Handle("/fleet/v1/", cfg.Handler)
	}
	f.httpSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelDebug)}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		f.httpSrv.Serve(f.tr.HTTPListener())
	}()

	mc := memberlist.DefaultLANConfig()
	mc.Name = cfg.Node.ID()
	mc.Transport = f.tr
	mc.AdvertiseAddr, mc.AdvertisePort = f.tr.advertise.IP.String(), f.tr.advertise.Port
	mc.BindAddr, mc.BindPort = mc.AdvertiseAddr, mc.AdvertisePort
	mc.Delegate = (*delegate)(f)
	mc.Events = (*events)(f)
	mc.Alive = (*events)(f)
	mc.Ping = (*events)(f)
	mc.UDPBufferSize = MaxPacketSize - 1024
	mc.ProbeInterval, mc.ProbeTimeout = cfg.Timing.ProbeInterval, cfg.Timing.ProbeTimeout
	mc.GossipInterval, mc.GossipNodes = cfg.Timing.GossipInterval, cfg.Timing.GossipNodes
	mc.SuspicionMult, mc.PushPullInterval = cfg.Timing.SuspicionMult, cfg.Timing.PushPullInterval
	mc.DeadNodeReclaimTime = 30 * time.Second // a node restarted on a new address gets its name back
	mc.Logger = log.New(&memberlistLog{cfg.Logger}, "", 0)
	f.queue = &memberlist.TransmitLimitedQueue{NumNodes: func() int { return f.ml.NumMembers() }, RetransmitMult: mc.RetransmitMult}
	if f.ml, err = memberlist.Create(mc); err != nil {
		f.cancel()
		f.tr.Shutdown()
		return nil, fmt.Errorf("fleet membership: %v", err)
	}
	if len(cfg.Join) > 0 {
		if err := f.join(ctx, cfg.Join); err != nil {
			f.log.Warn("fleet join failed; retrying in the background", "join", strings.Join(cfg.Join, ","), "err", err)
		}
	}
	f.wg.Add(1)
	go f.rejoin()
	return f, nil
}

// clientTLS returns the configuration for dialling node with ALPN name proto, kept so
// that its verified-peer cache serves later connections.
func (f *Fleet) clientTLS(node, proto string) *tls.Config {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := node + " " + proto
	if c := f.tlsConfs[k]; c != nil {
		return c
	}
	if f.tlsConfs == nil || len(f.tlsConfs) >= 4096 {
		f.tlsConfs = map[string]*tls.Config{}
	}
	c := ClientTLSConfig(f.cert, f.cfg.Trust, []string{proto}, node)
	f.tlsConfs[k] = c
	return c
}

// renewCertificate makes a new TLS certificate when the current one has less than a
// third of its life left: a node may run for longer than one certificate lasts.
func (f *Fleet) renewCertificate() {
	defer f.wg.Done()
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		select {
		case <-f.ctx.Done():
			return
		case <-t.C:
		}
		f.mu.Lock()
		leaf := f.cert.Leaf
		f.mu.Unlock()
		if leaf == nil || time.Until(leaf.NotAfter) > leaf.NotAfter.Sub(leaf.NotBefore)/3 {
			continue
		}
		cert, err := NewTLSCertificate(f.cfg.Node, time.Now())
		if err != nil {
			f.log.Error("fleet TLS certificate renewal", "err", err)
			continue
		}
		f.mu.Lock()
		f.cert, f.tlsConfs = cert, nil
		f.mu.Unlock()
		f.tr.SetServerTLS(ServerTLSConfig(cert, f.cfg.Trust, Protos, f.refusedHandshake))
		f.log.Info("fleet TLS certificate renewed", "until", cert.Leaf.NotAfter)
	}
}

// Addr is the fleet address peers dial.
func (f *Fleet) Addr() string { return f.tr.Addr() }

// ID is this node's id.
func (f *Fleet) ID() string { return f.cfg.Node.ID() }

// join exchanges records with the join addresses, then joins their memberlist.
func (f *Fleet) join(ctx context.Context, addrs []string) error {
	var errs []error
	var ok []string
	for _, a := range addrs {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := f.syncWith(sctx, "", a)
		cancel()
		if err != nil {
			if strings.Contains(err.Error(), "tls: bad certificate") {
				err = fmt.Errorf("the peer refused this node's identity: its operator has not pinned institution root %s ('sios trust add-root')", f.cfg.Node.Cert.RootID)
			}
			errs = append(errs, fmt.Errorf("%s: %v", a, err))
			continue
		}
		ok = append(ok, a)
	}
	if len(ok) == 0 {
		return errors.Join(errs...)
	}
	if _, err := f.ml.Join(ok); err != nil {
		return err
	}
	// Tell the fleet about this node's own records at once rather than at the next
	// push/pull: they are what admits it elsewhere.
	for _, rec := range f.cfg.Publisher.Records(0) {
		f.broadcast(rec)
	}
	return nil
}

// rejoin retries the join addresses while this node knows no live peer, and every
// few rounds tries one peer it holds dead: a restarted peer, or the other side of a
// healed partition, is found again without an operator.
func (f *Fleet) rejoin() {
	defer f.wg.Done()
	t := time.NewTicker(f.cfg.Timing.RejoinInterval)
	defer t.Stop()
	for round := 1; ; round++ {
		select {
		case <-f.ctx.Done():
			return
		case <-t.C:
		}
		for _, p := range f.Peers() {
			if p.State == StateAlive {
				f.maybeAttest(p.NodeID)
			}
		}
		if f.ml.NumMembers() <= 1 && len(f.cfg.Join) > 0 {
			if err := f.join(f.ctx, f.cfg.Join); err != nil {
				f.log.Debug("fleet rejoin", "err", err)
			}
			continue
		}
		if round%6 != 0 {
			continue
		}
		var dead []string
		for _, p := range f.Peers() {
			if p.State == StateDead && !p.Forked && p.Addr != "" {
				dead = append(dead, p.Addr)
			}
		}
		if len(dead) > 0 {
			addr := dead[rand.N(len(dead))]
			if _, err := f.ml.Join([]string{addr}); err != nil {
				f.log.Debug("fleet: dead peer still unreachable", "addr", addr, "err", err)
			}
		}
	}
}

// Publish appends a record to this node's feed and gossips it.
func (f *Fleet) Publish(kind string, body any) error {
	rec, err := f.cfg.Publisher.Publish(kind, body, time.Now())
	if err != nil {
		return err
	}
	if _, err := f.cfg.Log.Add(rec, f.cfg.Trust()); err != nil {
		return err
	}
	f.save(f.ID())
	f.broadcast(rec)
	f.notify()
	return nil
}

// save archives what the log holds of node's feed.
func (f *Fleet) save(node string) {
	if f.cfg.Archive == nil {
		return
	}
	if err := f.cfg.Archive.Save(f.cfg.Log, node); err != nil {
		f.log.Error("fleet archive", "node", node, "err", err)
	}
}

// Log is the fleet-wide log this node holds.
func (f *Fleet) Log() *Log { return f.cfg.Log }

// Changed returns a channel closed at the next change of the peers or the log.
func (f *Fleet) Changed() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.changed
}

func (f *Fleet) notify() {
	f.mu.Lock()
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
}

// Close leaves the fleet gracefully (peers drop this node's routes at once instead of
// waiting for failure detection), then stops everything.
func (f *Fleet) Close(timeout time.Duration) error {
	var err error
	if lerr := f.ml.Leave(timeout); lerr != nil {
		// No peer acknowledged in time (they may all be gone): leaving is a courtesy.
		f.log.Info("fleet leave not acknowledged", "err", lerr)
	}
	f.cancel()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	f.httpSrv.Shutdown(ctx)
	err = errors.Join(err, f.ml.Shutdown())
	f.wg.Wait()
	f.mu.Lock()
	for _, c := range f.clients {
		c.CloseIdleConnections()
	}
	f.mu.Unlock()
	return err
}

// Kill stops the node's membership without a goodbye, as a crash would: for tests and
// benchmarks of failure detection.
func (f *Fleet) Kill() {
	f.cancel()
	f.ml.Shutdown()
	f.httpSrv.Close()
	f.wg.Wait()
}

// refusedHandshake is the server TLS config's refusal hook.
func (f *Fleet) refusedHandshake(remote string, err error) {
	r := Refusal{Addr: remote, Reason: err.Error()}
	var pe *PeerError
	if errors.As(err, &pe) {
		r.Node = pe.Node
	}
	// Keyed by address: the node id is the stranger's own claim, free to vary.
	host, _, _ := net.SplitHostPort(remote)
	f.refuse(r, "addr "+host)
}

// refuse reports a refusal, at most once a minute per key (a member's node id, or a
// connecting address), so that a peer retrying cannot flood the audit log.
func (f *Fleet) refuse(r Refusal, key string) {
	now := time.Now()
	f.mu.Lock()
	last, seen := f.refusals[key]
	if seen && now.Sub(last) < time.Minute {
		f.mu.Unlock()
		return
	}
	if len(f.refusals) >= 4096 {
		clear(f.refusals)
	}
	f.refusals[key] = now
	f.mu.Unlock()
	f.log.Warn("fleet peer refused", "node", r.Node, "addr", r.Addr, "reason", r.Reason)
	if f.cfg.Refused != nil {
		f.cfg.Refused(r)
	}
}

// broadcast queues a record for gossip.
func (f *Fleet) broadcast(rec []byte) {
	r, err := Parse(rec)
	if err != nil {
		return
	}
	msg := append([]byte{msgRecord}, rec...)
	f.queue.QueueBroadcast(&recordBroadcast{name: fmt.Sprintf("%s/%d", r.Node, r.Seq), msg: msg})
}

// Gossip message types: the first byte of a memberlist user message. Only append.
const msgRecord = 'r'

type recordBroadcast struct {
	name string
	msg  []byte
}

func (b *recordBroadcast) Invalidates(memberlist.Broadcast) bool { return false }
func (b *recordBroadcast) Name() string                          { return b.name }
func (b *recordBroadcast) Message() []byte                       { return b.msg }
func (b *recordBroadcast) Finished()                             {}

// addRecords adds records to the log, gossips the ones that were new, and reports
// how many applied and the nodes whose records it holds for want of a predecessor.
func (f *Fleet) addRecords(recs [][]byte) (applied int, held []string, errs []error) {
	trust := f.cfg.Trust()
	for _, rec := range recs {
		res, err := f.cfg.Log.Add(rec, trust)
		if err == nil && res.Status == Held && !slices.Contains(held, res.Node) {
			held = append(held, res.Node)
		}
		if err != nil {
			if errors.Is(err, ErrAttestation) {
				// Only the node itself signs its identity record: its TPM evidence, not a
				// stranger's forgery, failed.
				f.refuse(Refusal{Node: res.Node, Reason: err.Error()}, "node "+res.Node)
			}
			errs = append(errs, err)
			continue
		}
		if res.Status == Applied || res.Status == Forked {
			applied += res.Applied
			f.broadcast(rec)
			f.save(res.Node)
		}
	}
	if applied > 0 {
		f.notify()
		f.admitPending()
	}
	return applied, held, errs
}

// delegate is the Fleet as a memberlist.Delegate.
type delegate Fleet

func (d *delegate) NodeMeta(int) []byte { return nil }

func (d *delegate) NotifyMsg(b []byte) {
	f := (*Fleet)(d)
	if len(b) < 2 || b[0] != msgRecord {
		return
	}
	_, held, errs := f.addRecords([][]byte{b[1:]})
	if len(errs) > 0 {
		f.log.Debug("fleet gossip record refused", "err", errs[0])
	}
	for _, node := range held {
		f.fillGap(node)
	}
}

// fillGap syncs at once with a node whose gossiped record arrived ahead of one that
// gossip lost (packets are dropped when a peer's queue is full), rather than holding
// it until the next push/pull, up to PushPullInterval later: a refutation or an
// acceptance that waits behind a lost suspicion would otherwise be seen that much late.
// At most one such sync per node and second.
func (f *Fleet) fillGap(node string) {
	f.mu.Lock()
	p := f.peers[node]
	if p == nil || p.state != StateAlive || p.addr == "" || time.Since(p.gap) < time.Second {
		f.mu.Unlock()
		return
	}
	p.gap = time.Now()
	addr := p.addr
	f.mu.Unlock()
	f.syncInBackground(node, addr, func(err error) {
		if err != nil {
			f.log.Debug("fleet gap sync", "peer", node, "err", err)
		}
	})
}

func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte {
	return d.queue.GetBroadcasts(overhead, limit)
}

// LocalState is this node's digest, sent in memberlist's push/pull.
func (d *delegate) LocalState(bool) []byte {
	f := (*Fleet)(d)
	b, _ := Marshal(stateMsg{Node: f.ID(), Addr: f.Addr(), Digest: f.cfg.Log.Digest()})
	return b
}

// MergeRemoteState compares a peer's digest with this log and, if the peer holds
// records this node lacks, fetches them over the fleet API (memberlist's stream is
// not the place for megabytes of records).
func (d *delegate) MergeRemoteState(buf []byte, _ bool) {
	f := (*Fleet)(d)
	st, err := parseState(buf)
	if err != nil || st.Node == f.ID() {
		return
	}
	if !f.lacks(st.Digest) {
		return
	}
	f.syncInBackground(st.Node, st.Addr, func(err error) {
		if err != nil {
			f.log.Debug("fleet anti-entropy", "peer", st.Node, "err", err)
		}
	})
}

// lacks reports whether a peer's digest names records this log does not hold.
func (f *Fleet) lacks(other Digest) bool {
	mine := f.cfg.Log.Digest()
	for id, h := range other {
		m, ok := mine[id]
		if !ok || m.Seq < h.Seq || (m.Seq == h.Seq && m.Hash != h.Hash) || (h.Forked && !m.Forked) {
			return true
		}
	}
	return false
}

type stateMsg struct {
	Node   string `json:"node"`
	Addr   string `json:"addr"`
	Digest Digest `json:"digest"`
}

// parseState reads a peer's push/pull state strictly (jcs.DecodeStrict), within
// MaxSyncSize, naming a node.
func parseState(buf []byte) (*stateMsg, error) {
	if len(buf) > MaxSyncSize {
		return nil, fmt.Errorf("state is %d bytes, more than %d (MaxSyncSize)", len(buf), MaxSyncSize)
	}
	var st stateMsg
	if err := jcs.DecodeStrict(buf, &st); err != nil {
		return nil, fmt.Errorf("state: %v", err)
	}
	if !validNodeID(st.Node) {
		return nil, fmt.Errorf("state names %q, not a node id", short(st.Node))
	}
	return &st, nil
}

// events is the Fleet as memberlist's event, alive and ping delegates.
type events Fleet

func (e *events) NotifyJoin(n *memberlist.Node)   { (*Fleet)(e).setState(n, StateAlive) }
func (e *events) NotifyUpdate(n *memberlist.Node) { (*Fleet)(e).setState(n, StateAlive) }
func (e *events) NotifyLeave(n *memberlist.Node)  { (*Fleet)(e).setState(n, StateDead) }

func (f *Fleet) setState(n *memberlist.Node, state string) {
	if n.Name == f.ID() {
		return
	}
	f.mu.Lock()
	p := f.peers[n.Name]
	if p == nil {
		p = &peerState{}
		f.peers[n.Name] = p
	}
	if p.state != state {
		p.since = time.Now()
	}
	p.addr, p.state = n.Address(), state
	if state == StateDead {
		f.forgetAttestationLocked(n.Name)
	}
	f.mu.Unlock()
	f.notify()
	if state == StateAlive {
		f.maybeAttest(n.Name)
	}
}

// NotifyAlive admits a member only if its identity record has verified: it is in the
// log, which accepts a feed only under a pinned root. A member not yet known is refused
// for now and checked in the background by asking it for its records over mutual TLS;
// if that succeeds it is joined, and otherwise the refusal is audited.
func (e *events) NotifyAlive(n *memberlist.Node) error {
	f := (*Fleet)(e)
	if n.Name == f.ID() {
		return nil
	}
	if fd, ok := f.cfg.Log.Feed(n.Name); ok && len(fd.Records) > 0 {
		if fd.Forked {
			return fmt.Errorf("node %s's feed has forked", n.Name)
		}
		return nil
	}
	if !validNodeID(n.Name) {
		f.refuse(Refusal{Node: short(n.Name), Addr: n.Address(), Reason: "member name is not a node id"}, "addr "+n.Addr.String())
		return errors.New("member name is not a node id")
	}
	f.checkIdentity(n.Name, n.Address())
	return fmt.Errorf("identity of %s not verified yet", n.Name)
}

// checkIdentity fetches an unknown member's records from it (at most every few
// seconds per member), then joins it if its identity verified.
func (f *Fleet) checkIdentity(node, addr string) {
	f.mu.Lock()
	last, busy := f.pending[node]
	if busy && time.Since(last) < 2*time.Second || len(f.pending) >= MaxPending {
		f.mu.Unlock()
		return
	}
	f.pending[node] = time.Now()
	f.mu.Unlock()
	f.syncInBackground(node, addr, func(err error) {
		if _, ok := f.cfg.Log.Feed(node); ok {
			f.admit(node, addr)
			return
		}
		if err == nil {
			err = errors.New("it did not present an identity record")
		}
		f.refuse(Refusal{Node: node, Addr: addr, Reason: err.Error()}, "node "+node)
	})
}

// syncInBackground exchanges records with node at addr on a goroutine of its own
// (Close waits for it), for at most 10 s, and passes how it ended to done.
func (f *Fleet) syncInBackground(node, addr string, done func(error)) {
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		ctx, cancel := context.WithTimeout(f.ctx, 10*time.Second)
		defer cancel()
		done(f.syncWith(ctx, node, addr))
	}()
}

// admitPending joins members that were refused while their identity was unknown and
// whose identity the log now holds.
func (f *Fleet) admitPending() {
	f.mu.Lock()
	var ready []string
	for node := range f.pending {
		if _, ok := f.cfg.Log.Feed(node); ok {
			ready = append(ready, node)
		}
	}
	f.mu.Unlock()
	for _, node := range ready {
		f.admit(node, "")
	}
}

func (f *Fleet) admit(node, addr string) {
	f.mu.Lock()
	delete(f.pending, node)
	f.mu.Unlock()
	if addr == "" {
		v, ok := f.cfg.Log.NodeView(node)
		if !ok || v.Endpoints == nil {
			return // its next alive message or push/pull will do
		}
		addr = v.Endpoints.Fleet
	}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		if _, err := f.ml.Join([]string{addr}); err != nil {
			f.log.Debug("fleet admit", "node", node, "err", err)
		}
	}()
}

func (e *events) AckPayload() []byte { return nil }

// NotifyPingComplete keeps a smoothed round-trip time per peer, for routing.
func (e *events) NotifyPingComplete(n *memberlist.Node, rtt time.Duration, _ []byte) {
	f := (*Fleet)(e)
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.peers[n.Name]
	if p == nil {
		return
	}
	if p.rtt == 0 {
		p.rtt = rtt
	} else {
		p.rtt = (7*p.rtt + rtt) / 8
	}
}

// Peer is what this node knows of another: its federation records and its health.
type Peer struct {
	NodeID      string `json:"node_id"`
	Name        string `json:"name"`
	Institution string `json:"institution"`
	State       string `json:"state"` // StateAlive, StateSuspect or StateDead
	Since       string `json:"since,omitempty"`
	Posture     string `json:"posture"`
	// Attestation is AttestTPM only while this node holds a fresh check of the peer's
	// TPM (Attest) for the EK its identity record names, EKSHA256; AttestSoftware
	// otherwise, whatever the record states.
	Attestation string  `json:"attestation"`
	EKSHA256    string  `json:"ek_sha256,omitempty"`
	Brains      []Brain `json:"brains"`
	Addr        string  `json:"addr,omitempty"`
	API         string  `json:"api,omitempty"`
	RTTMicros   int64   `json:"rtt_us,omitempty"`
	Forked      bool    `json:"forked,omitempty"`
	Seq         uint64  `json:"seq"`
}

// Peers lists every other node of the log, by node id. A node never seen alive by
// membership is dead.
func (f *Fleet) Peers() []Peer {
	suspect := map[string]bool{}
	for _, m := range f.ml.Members() {
		if m.State == memberlist.StateSuspect {
			suspect[m.Name] = true
		}
	}
	views := f.cfg.Log.View()
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]Peer, 0, len(views))
	for _, v := range views {
		if v.Node == f.ID() {
			continue
		}
		p := Peer{NodeID: v.Node, Name: v.Name, Institution: v.Institution, State: StateDead, Posture: v.Posture,
			Brains: v.Brains, Forked: v.Forked, Seq: v.Seq}
		p.Attestation, p.EKSHA256 = f.attestationLocked(v.Node, v.Attestation, v.EKSHA256)
		if p.Brains == nil {
			p.Brains = []Brain{}
		}
		if v.Endpoints != nil {
			p.Addr, p.API = v.Endpoints.Fleet, v.Endpoints.API
		}
		if s := f.peers[v.Node]; s != nil {
			p.State, p.Addr, p.RTTMicros = s.state, s.addr, s.rtt.Microseconds()
			p.Since = s.since.UTC().Format(time.RFC3339)
			if p.State == StateAlive && suspect[v.Node] {
				p.State = StateSuspect
			}
		}
		out = append(out, p)
	}
	return out
}

// Candidates are the peers that offer brain and can take work now: not dead, not
// forked, in order of preference — alive before suspect, then by measured latency,
// then by node id so that every node ranks the same way.
func (f *Fleet) Candidates(brain string) []Peer {
	var out []Peer
	for _, p := range f.Peers() {
		if p.State == StateDead || p.Forked {
			continue
		}
		if slices.ContainsFunc(p.Brains, func(b Brain) bool { return b.ID == brain }) {
			out = append(out, p)
		}
	}
	slices.SortStableFunc(out, func(a, b Peer) int {
		if (a.State == StateAlive) != (b.State == StateAlive) {
			if a.State == StateAlive {
				return -1
			}
			return 1
		}
		if a.RTTMicros != b.RTTMicros {
			switch { // an unmeasured peer (0) ranks after measured ones
			case a.RTTMicros == 0:
				return 1
			case b.RTTMicros == 0:
				return -1
			}
			return int(a.RTTMicros - b.RTTMicros)
		}
		return strings.Compare(a.NodeID, b.NodeID)
	})
	return out
}

// Offered lists the brains peers offer, by id, with the peers that offer each (dead
// ones included, so that a caller can say why a brain is unreachable).
func (f *Fleet) Offered() map[string][]Peer {
	out := map[string][]Peer{}
	for _, p := range f.Peers() {
		for _, b := range p.Brains {
			out[b.ID] = append(out[b.ID], p)
		}
	}
	for _, k := range slices.Collect(maps.Keys(out)) {
		slices.SortFunc(out[k], func(a, b Peer) int { return strings.Compare(a.NodeID, b.NodeID) })
	}
	return out
}

// memberlistLog sends memberlist's log lines to slog at debug level: its warnings
// (such as refused alive messages) are reported by the fleet itself where they matter.
type memberlistLog struct{ l *slog.Logger }

func (w *memberlistLog) Write(p []byte) (int, error) {
	w.l.Debug(strings.TrimSpace(string(p)))
	return len(p), nil
}

var _ io.Writer = (*memberlistLog)(nil)
