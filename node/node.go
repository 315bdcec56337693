// Package node wires a sios node's subsystems into one process: identity, the audit
// ledger, the policy engine and principals, the brain catalogue, model backends behind
// the egress guard, and the governed invocation path that the API serves. One Node owns
// them all; there is no package-level state.
package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/sios-project/sios/api"
	"github.com/sios-project/sios/backend"
	"github.com/sios-project/sios/brain"
	"github.com/sios-project/sios/egress"
	"github.com/sios-project/sios/fleet"
	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/ledger"
	"github.com/sios-project/sios/memory"
	"github.com/sios-project/sios/oar"
	"github.com/sios-project/sios/policy"
)

// DefaultSealDelay is the node's ledger SealMaxDelay (see ledger.Options).
const DefaultSealDelay = 5 * time.Millisecond

// Options builds a Node.
type Options struct {
	DataDir string
	Config  Config
	Logger  *slog.Logger
	// Ledger tunes the audit ledger (zero: defaults).
	Ledger ledger.Options
	// FleetTiming tunes fleet membership (zero: fleet.DefaultTiming).
	FleetTiming fleet.Timing
}

// Node is a running node's state.
type Node struct {
	dataDir    string
	cfg        Config
	log        *slog.Logger
	id         *identity.Node
	ledger     *ledger.Ledger
	policy     *policy.Engine
	principals *policy.Principals
	brains     *brain.Catalogue
	guard      *egress.Guard
	builtin    *Builtin
	memory     *MemoryOps
	limits     *limiter
	backendLvl policy.Level

	feed        *fleet.Publisher // this node's own federation feed
	fleetLog    *fleet.Log       // the fleet-wide log
	archive     *fleet.Archive   // the fleet-wide log on disk
	repl        *replication     // audit replication; nil when the node runs alone
	replCtx     context.Context  // ends replication at shutdown
	replStop    context.CancelFunc
	fleet       *fleet.Fleet       // nil until Serve starts membership, and when alone
	fleetTiming fleet.Timing       // from Options
	replay      *fleet.ReplayGuard // envelopes already served

	mu        sync.Mutex
	backends  map[string]backend.Backend // guarded by mu; by base URL
	trust     fleet.Trust                // guarded by mu; see fleetTrust
	trustRead time.Time                  // guarded by mu

	bg sync.WaitGroup // completion records still being written
}

// Open loads everything from the data directory and opens the ledger (holding its
// lock). A policy or brain file that does not load is an error naming the file: the
// node never starts with a partial configuration.
func Open(ctx context.Context, opts Options) (*Node, error) {
	n := &Node{dataDir: opts.DataDir, cfg: opts.Config, log: opts.Logger, backends: map[string]backend.Backend{},
		fleetLog: fleet.NewLog(), fleetTiming: opts.FleetTiming, replay: fleet.NewReplayGuard()}
	if n.log == nil {
		n.log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if n.cfg.Listen == "" {
		n.cfg.Listen = DefaultListen
	}
	if n.cfg.Backend == "" {
		n.cfg.Backend = "builtin"
	}
	if n.cfg.PrincipalRequestsPerMinute == 0 {
		n.cfg.PrincipalRequestsPerMinute = DefaultPrincipalPerMinute
	}
	if n.cfg.PrincipalBurst == 0 {
		n.cfg.PrincipalBurst = DefaultPrincipalBurst
	}
	if n.cfg.PeerRequestsPerMinute == 0 {
		n.cfg.PeerRequestsPerMinute = DefaultPeerRequestsPerMinute
	}
	if err := n.cfg.check(); err != nil {
		return nil, err
	}
	var err error
	if n.backendLvl, err = policy.ParseLevel(orDefault(n.cfg.BackendAccreditation, "SECRET")); err != nil {
		return nil, fmt.Errorf("config backend_accreditation: %v", err)
	}
	if n.id, err = identity.Load(n.dataDir); err != nil {
		return nil, err
	}
	if n.trust, _, err = fleet.LoadTrust(n.dataDir, n.id.Cert); err != nil {
		return nil, fmt.Errorf("trust store: %v", err)
	}
	n.trustRead = time.Now()
	if n.archive, err = fleet.OpenArchive(filepath.Join(n.dataDir, "fleet", "log")); err != nil {
		return nil, fmt.Errorf("fleet log: %v", err)
	}
	skipped, err := n.archive.Load(n.fleetLog, n.trust)
	if err != nil {
		return nil, fmt.Errorf("fleet log: %v", err)
	}
	for _, s := range skipped {
		n.log.Warn("fleet log: record not loaded", "why", s)
	}
	if n.policy, err = policy.Load(n.dataDir); err != nil {
		return nil, err
	}
	if n.brains, err = brain.Load(n.dataDir); err != nil {
		return nil, err
	}
	if n.principals, err = policy.OpenPrincipals(n.dataDir); err != nil {
		return nil, err
	}
	var rules []egress.Rule
	for _, s := range append([]string{n.cfg.Backend}, n.cfg.EgressAllow...) {
		if s == "builtin" {
			continue
		}
		r, err := egressRule(s)
		if err != nil {
			return nil, fmt.Errorf("config: %v", err)
		}
		rules = append(rules, r)
	}
	if n.guard, err = egress.New(rules, n.auditRefusal); err != nil {
		return nil, fmt.Errorf("config: %v", err)
	}
	n.limits = newLimiter(time.Now)
	lopts := opts.Ledger
	if lopts.SealMaxDelay == 0 {
		// Under steady traffic, seal every few milliseconds instead of per request: far
		// fewer ML-DSA-65 signatures, and the admission record's wait still hides
		// behind the model's latency. Measured with 'sios bench gateway' at 2000/s:
		// overhead p50 3 ms → 0.9 ms, p99 23–45 ms → 9–12 ms.
		lopts.SealMaxDelay = DefaultSealDelay
	}
	if n.ledger, err = ledger.Open(ctx, filepath.Join(n.dataDir, "ledger"), n.id, lopts); err != nil {
		return nil, err
	}
	store, err := memory.Open(n.dataDir, memory.Options{})
	if err != nil {
		n.ledger.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	n.memory = &MemoryOps{Store: store, Append: n.ledger.Append}
	if n.cfg.Backend != "builtin" && n.cfg.EmbeddingModel != "" {
		def, _, err := n.backendFor(&brain.Brain{})
		if err != nil {
			store.Close()
			n.ledger.Close(context.WithoutCancel(ctx))
			return nil, err
		}
		model := n.cfg.EmbeddingModel
		n.memory.Embed = func(ctx context.Context, texts []string) ([][]float32, error) {
			ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			return def.Embed(ctx, model, texts)
		}
	}
	n.builtin = &Builtin{node: n}
	if n.feed, err = n.publishFeed(time.Now()); err != nil {
		store.Close()
		n.ledger.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("federation feed: %v", err)
	}
	return n, nil
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// ID is the node id.
func (n *Node) ID() string { return n.id.ID() }

// Ledger is the node's audit ledger.
func (n *Node) Ledger() *ledger.Ledger { return n.ledger }

// Principals is the principal store.
func (n *Node) Principals() *policy.Principals { return n.principals }

// Brains is the brain catalogue.
func (n *Node) Brains() *brain.Catalogue { return n.brains }

// Policy is the policy engine.
func (n *Node) Policy() *policy.Engine { return n.policy }

// Guard is the egress guard.
func (n *Node) Guard() *egress.Guard { return n.guard }

// Config is the effective configuration.
func (n *Node) Config() Config { return n.cfg }

// Serve runs the API on ln and the admin API on the unix socket in the data directory
// until ctx is done, then shuts down gracefully: it stops accepting, lets in-flight
// requests finish (up to grace), waits for their audit records, and seals and
// flushes the ledger. ready, if not nil, is called once both listeners are up.
func (n *Node) Serve(ctx context.Context, ln net.Listener, grace time.Duration, ready func()) error {
	apiSrv := &http.Server{
		Handler:           api.NewServer(n, n.log),
		ReadHeaderTimeout: api.ReadHeaderTimeout,
		IdleTimeout:       api.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(n.log.Handler(), slog.LevelWarn),
	}
	adminLn, err := listenAdmin(n.dataDir)
	if err != nil {
		return err
	}
	adminSrv := &http.Server{Handler: n.adminHandler(), ReadHeaderTimeout: api.ReadHeaderTimeout}
	errc := make(chan error, 2)
	n.bg.Add(1) // Close waits for it: an expiry in progress finishes before the store closes
	go func() {
		defer n.bg.Done()
		n.runExpiry(ctx, n.cfg.retention(), n.cfg.Retention.every())
	}()
	go func() { errc <- apiSrv.Serve(ln) }()
	go func() { errc <- adminSrv.Serve(adminLn) }()
	if err := n.startFleet(ctx, ln.Addr().String()); err != nil {
		apiSrv.Close()
		adminSrv.Close()
		os.Remove(AdminSocket(n.dataDir))
		return fmt.Errorf("fleet: %v", err)
	}
	if ready != nil {
		ready()
	}
	select {
	case <-ctx.Done():
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("server stopped", "err", err)
		}
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
	defer cancel()
	err1 := apiSrv.Shutdown(sctx)
	var err3 error
	if n.fleet != nil {
		// Leave after the API has drained: requests in flight may still be calling peers.
		n.replStop()
		n.repl.wg.Wait()
		err3 = n.fleet.Close(fleetLeaveTimeout)
	}
	err2 := adminSrv.Shutdown(sctx)
	os.Remove(AdminSocket(n.dataDir))
	return errors.Join(err1, err2, err3)
}

// Close waits for outstanding audit records, then seals and flushes the ledger.
func (n *Node) Close(ctx context.Context) error {
	n.bg.Wait()
	merr := n.memory.Store.Close()
	return errors.Join(n.ledger.Close(ctx), merr)
}

// audit appends a record and returns its receipt in header form.
func (n *Node) audit(ctx context.Context, rec *oar.Record) (*oar.Receipt, string, error) {
	rc, _, err := n.ledger.Append(ctx, rec)
	if err != nil {
		return nil, "", err
	}
	return rc, EncodeReceipt(rc), nil
}

// auditRefusal records an egress refusal. The guard calls it before refusing.
func (n *Node) auditRefusal(r egress.Refusal) {
	detail, _ := json.Marshal(map[string]string{"network": r.Network, "address": r.Address, "reason": r.Reason})
	if _, _, err := n.audit(context.Background(), &oar.Record{
		Actor: oar.Actor{ID: "node"}, Action: "egress.refuse", Resource: r.Address,
		Decision: &oar.Decision{Effect: "deny", Policies: []string{"egress-allowlist"}}, Detail: detail,
	}); err != nil {
		n.log.Error("audit egress refusal", "err", err)
	}
}

// backendFor returns the client for a brain's backend: builtin, the node default, or
// a URL. Every network backend dials through the egress guard.
func (n *Node) backendFor(b *brain.Brain) (backend.Backend, string, error) {
	target := b.Backend
	if target == "" {
		target = n.cfg.Backend
	}
	if target == "builtin" {
		return n.builtin, "builtin", nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if be, ok := n.backends[target]; ok {
		return be, target, nil
	}
	key := ""
	if n.cfg.BackendAPIKeyEnv != "" {
		key = os.Getenv(n.cfg.BackendAPIKeyEnv)
	}
	be, err := backend.NewOpenAI(target, backend.Options{
		HTTPClient: &http.Client{Transport: n.guard.HTTPTransport()},
		APIKey:     key,
	})
	if err != nil {
		return nil, "", err
	}
	n.backends[target] = be
	return be, target, nil
}

// Bootstrap prepares a fresh data directory: a node identity (with an institution root
// key) if there is none, the default policies, and an admin principal whose API key is
// returned once. It returns "" when the directory was already set up.
func Bootstrap(dataDir string, now time.Time) (nodeID, apiKey string, err error) {
	if _, err := identity.Load(dataDir); err == nil {
		return "", "", policy.WriteDefaults(dataDir)
	} else if !errors.Is(err, identity.ErrNoIdentity) {
		return "", "", err
	}
	res, err := identity.Init(dataDir, "", "", now)
	if err != nil {
		return "", "", err
	}
	if err := policy.WriteDefaults(dataDir); err != nil {
		return "", "", err
	}
	ps, err := policy.OpenPrincipals(dataDir)
	if err != nil {
		return "", "", err
	}
	key, _, err := ps.Add(policy.NewPrincipal{Tenant: "default", ID: "admin", Clearance: "TOP-SECRET", Roles: []string{"admin"}}, now)
	if err != nil {
		return "", "", err
	}
	return res.Node.ID(), key, nil
}

// EncodeReceipt is the X-Sios-Receipt header form of a receipt: unpadded base64url JSON.
func EncodeReceipt(rc *oar.Receipt) string {
	b, _ := json.Marshal(rc)
	return b64url.EncodeToString(b)
}

func tenantOf(p *policy.Principal) string { return strings.TrimSpace(p.Tenant) }
