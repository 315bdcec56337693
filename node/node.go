// Package node is a sios node's owner: it opens the data directory, builds every
// subsystem from it — identity, the audit ledger, the policy engine and principals,
// the brain catalogue, model backends behind the egress guard, memory, the invocation
// pipeline, the fleet and audit replication — owns them (there is no package-level
// state), and starts and stops them in order. What a request does is the pipeline's
// (package invoke); how it arrives is the API's (api, fleetapi, admin).
package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sios-project/sios/admin"
	"github.com/sios-project/sios/api"
	"github.com/sios-project/sios/backend"
	"github.com/sios-project/sios/backend/builtin"
	"github.com/sios-project/sios/brain"
	"github.com/sios-project/sios/consent"
	"github.com/sios-project/sios/console"
	"github.com/sios-project/sios/decision"
	"github.com/sios-project/sios/deliberate"
	"github.com/sios-project/sios/egress"
	"github.com/sios-project/sios/fleet"
	"github.com/sios-project/sios/fleetapi"
	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/identity/tpm"
	"github.com/sios-project/sios/invoke"
	"github.com/sios-project/sios/ledger"
	"github.com/sios-project/sios/memory"
	"github.com/sios-project/sios/metrics"
	"github.com/sios-project/sios/oar"
	"github.com/sios-project/sios/policy"
	"github.com/sios-project/sios/replication"
	"github.com/sios-project/sios/roles"
	"github.com/sios-project/sios/sso"
	"golang.org/x/net/netutil"
)

// DefaultTesseraBatchAge is how long the node's ledger lets Tessera gather entries
// before it writes them into the log's tiles (ledger.Options.TesseraBatchAge). Records
// are durable and receipted once journaled, so this only delays when a checkpoint
// covers them; each Tessera batch costs several file writes and two syncs of the file
// system (with each file and directory synced in turn, as before SyncBatches, batches
// were 10 % of the node's CPU at 2,000 requests/s with 100 ms batches).
const DefaultTesseraBatchAge = 500 * time.Millisecond

// The node's ledger seal timing (see ledger.Options): a record whose receipt nobody
// asks for is sealed within DefaultSealDelay; one whose receipt is asked for (or, from
// how late recent receipts were asked for, will be soon) as soon as the journal is
// free, at most one such seal per DefaultSealInterval on average. At 2,000 requests/s
// with a 20 ms model, seals every ~15 ms instead of every 5 ms cut the node's CPU per
// request by about a tenth (ML-DSA-65 signing).
const (
	DefaultSealDelay    = 100 * time.Millisecond
	DefaultSealInterval = 5 * time.Millisecond
)

// Options builds a Node.
type Options struct {
	DataDir string
	Config  Config
	Logger  *slog.Logger
	// RequestLog, when set, is where the API writes its request lines itself, in the
	// form Logger's handler (slog's, text or JSON as Config.LogFormat says, level INFO)
	// would write them, without going through it (api.Server.SetRequestLog): the
	// writer Logger writes to.
	RequestLog io.Writer
	// Ledger tunes the audit ledger (zero: defaults).
	Ledger ledger.Options
	// FleetTiming tunes fleet membership (zero: fleet.DefaultTiming).
	FleetTiming fleet.Timing
	// TPM, when set, is the node's identity as identity/tpm.Load unsealed it from its
	// TPM: used instead of identity.Load; its evidence goes into the node's identity
	// record and its attestor answers peers' challenges. The caller keeps it (and the
	// TPM) open until the node is closed.
	TPM *tpm.Node
}

// Node is a running node's state.
type Node struct {
	dataDir string
	cfg     Config
	log     *slog.Logger
	// requestLog is Options.RequestLog.
	requestLog io.Writer

	id         *identity.Node
	tpm        *tpm.Node // nil unless the node's key is sealed to a TPM
	ledger     *ledger.Ledger
	policy     *policy.Live // replaced by Reload
	principals *policy.Principals
	brains     *brain.Live // replaced by Reload
	metrics    *metrics.Metrics
	// metricsAddr is the metrics listener's address while Serve runs ("": none).
	metricsAddr string
	guard       *egress.Guard
	memory      *memory.Ops
	pipeline    *invoke.Pipeline
	sso         *sso.Validator      // nil without single sign-on
	panels      *decision.Panels    // DIR/panels
	decisions   *deliberate.Service // decisions asked of panels, and this node's ballots

	feed        *fleet.Publisher // this node's own federation feed
	fleetLog    *fleet.Log       // the fleet-wide log
	archive     *fleet.Archive   // the fleet-wide log on disk
	fleetTiming fleet.Timing     // from Options
	fleetAPI    *fleetapi.API
	repl        *replication.Replication // nil when the node runs alone
	fleet       *fleet.Fleet             // nil until Serve starts membership, and when alone
	// joined is fleet for the API's goroutines (readiness, metrics), which run while
	// Serve starts and stops it.
	joined atomic.Pointer[fleet.Fleet]
	roles  *roles.Keeper // the institution's chartered roles (succession.go)
	// rolesFleet is fleet for the role keeper's loop, which Serve starts and stops.
	rolesFleet atomic.Pointer[fleet.Fleet]

	reloadMu  sync.Mutex // one Reload at a time
	mu        sync.Mutex
	trust     fleet.Trust // guarded by mu; see fleetTrust
	trustRead time.Time   // guarded by mu

	bg sync.WaitGroup // background work that Close waits for (retention)
}

// Open loads everything from the data directory and opens the ledger (holding its
// lock). A policy or brain file that does not load is an error naming the file: the
// node never starts with a partial configuration.
func Open(ctx context.Context, opts Options) (*Node, error) {
	n := &Node{dataDir: opts.DataDir, cfg: opts.Config.withDefaults(), log: opts.Logger, requestLog: opts.RequestLog, fleetLog: fleet.NewLog(), fleetTiming: opts.FleetTiming}
	if n.log == nil {
		n.log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if err := n.cfg.check(); err != nil {
		return nil, err
	}
	backendLvl, err := policy.ParseLevel(orDefault(n.cfg.BackendAccreditation, "SECRET"))
	if err != nil {
		return nil, fmt.Errorf("config backend_accreditation: %v", err)
	}
	if opts.TPM != nil {
		n.id, n.tpm = opts.TPM.Node, opts.TPM
	} else if n.id, err = identity.Load(n.dataDir); err != nil {
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
	n.metrics = metrics.New()
	eng, err := policy.Load(n.dataDir)
	if err != nil {
		return nil, err
	}
	n.policy = policy.NewLive(eng, func(req policy.Request, d policy.Decision) {
		n.metrics.Decision(req.Action, d.Allow, d.Reasons, len(d.Errors) > 0)
	})
	cat, err := brain.Load(n.dataDir)
	if err != nil {
		return nil, err
	}
	n.brains = brain.NewLive(cat)
	if n.panels, err = decision.LoadPanels(n.dataDir, n.brains); err != nil {
		return nil, err
	}
	if n.principals, err = policy.OpenPrincipals(n.dataDir); err != nil {
		return nil, err
	}
	rules, err := n.cfg.egressRules()
	if err != nil {
		return nil, fmt.Errorf("config: %v", err)
	}
	if n.guard, err = egress.New(rules, n.auditRefusal); err != nil {
		return nil, fmt.Errorf("config: %v", err)
	}
	lopts := opts.Ledger
	if lopts.SealMaxDelay == 0 {
		// Under steady traffic, seal every few milliseconds instead of per request: far
		// fewer ML-DSA-65 signatures (each 0.3–0.8 ms of CPU). The admission record waits
		// only until it is durable (ledger.Write), not for its seal, and the receipt the
		// answer carries is asked for after the model has answered: the ledger seals
		// ahead of that, so the delay stays off the request's path.
		lopts.SealMaxDelay, lopts.SealInterval = DefaultSealDelay, DefaultSealInterval
	}
	if lopts.TesseraBatchAge == 0 {
		lopts.TesseraBatchAge = DefaultTesseraBatchAge
	}
	if lopts.Observe == nil {
		lopts.Observe = n.observeLedger
	}
	if n.ledger, err = ledger.Open(ctx, filepath.Join(n.dataDir, "ledger"), n.id, lopts); err != nil {
		return nil, err
	}
	// The consent grants this node's principals made: checked against this node's keys
	// as they load.
	grants, err := consent.OpenStore(n.dataDir, consent.Signer{Key: n.id.Public(), Institution: n.id.Cert.RootID})
	if err != nil {
		n.ledger.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("consent grants: %v", err)
	}
	store, err := memory.Open(n.dataDir, memory.Options{})
	if err != nil {
		n.ledger.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	key := ""
	if n.cfg.BackendAPIKeyEnv != "" {
		key = os.Getenv(n.cfg.BackendAPIKeyEnv)
	}
	// Model servers on plain http:// are called on each request's own goroutine
	// (backend.Transport); https:// ones through net/http's transport. Both dial only
	// through the egress guard.
	backends := backend.NewPool(&backend.Transport{Dial: n.guard.DialContext, TLS: n.guard.HTTPTransport()}, key)
	n.memory = &memory.Ops{Store: store, Append: n.ledger.Append, Observe: n.metrics.Memory}
	if n.cfg.Backend != brain.BackendBuiltin && n.cfg.EmbeddingModel != "" {
		def, err := backends.Get(n.cfg.Backend)
		if err != nil {
			store.Close()
			n.ledger.Close(context.WithoutCancel(ctx))
			return nil, err
		}
		model := n.cfg.EmbeddingModel
		n.memory.EmbedAccreditation = backendLvl
		if accreditation, err := policy.ParseLevel(n.cfg.Accreditation); err == nil {
			n.memory.EmbedAccreditation = min(backendLvl, accreditation)
		}
		n.memory.Embed = func(ctx context.Context, texts []string) ([][]float32, error) {
			ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			vecs, _, err := def.Embed(ctx, model, texts)
			return vecs, err
		}
	}
	if len(n.cfg.OIDC) > 0 {
		// Keys are fetched only from the configured issuers, through the egress guard,
		// and cached on disk so that sign-ins go on when an issuer is unreachable.
		if n.sso, err = sso.New(n.cfg.OIDC, sso.Options{Client: &http.Client{Transport: n.guard.HTTPTransport()},
			CacheDir: filepath.Join(n.dataDir, "oidc"), OnKeys: n.auditKeys}); err != nil {
			store.Close()
			n.ledger.Close(context.WithoutCancel(ctx))
			return nil, fmt.Errorf("config oidc: %v", err)
		}
	}
	accreditation, _ := policy.ParseLevel(n.cfg.Accreditation) // checked by check; zero when unset
	var router *brain.Router
	if n.memory.Embed != nil {
		// "auto" routes by embedding similarity with the node's embeddings model.
		embed := n.memory.Embed
		if router, err = brain.NewRouter(brain.RouterOptions{Embedder: brain.EmbedderFunc(embed), Model: n.cfg.EmbeddingModel}); err != nil {
			store.Close()
			n.ledger.Close(context.WithoutCancel(ctx))
			return nil, err
		}
		go func() {
			wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			defer cancel()
			if err := router.Warm(wctx, n.brains.Catalogue()); err != nil {
				n.log.Warn("routing falls back to lexical until the embeddings model answers", "err", err)
			}
		}()
	}
	n.pipeline = invoke.New(invoke.Config{
		Identity: n.id, Ledger: n.ledger, Policy: n.policy, Principals: n.principals, Brains: n.brains,
		Memory: n.memory, Backends: backends, Builtin: &builtin.Backend{Brains: n.brains, Policies: n.policy.Len},
		OpenLog: n.openLog, FleetLog: n.fleetLog, Log: n.log, SSO: n.sso, Metrics: n.metrics, Consent: grants, Attestation: n.attestation(),
		DefaultBackend: n.cfg.Backend, DefaultModel: n.cfg.Model, EmbeddingModel: n.cfg.EmbeddingModel,
		BackendAccreditation: backendLvl, Accreditation: accreditation, Posture: n.cfg.posture(backendLvl),
		PrincipalPerMinute: n.cfg.PrincipalRequestsPerMinute, PrincipalBurst: n.cfg.PrincipalBurst,
		Models: n.cfg.models(), Started: time.Now(),
		Router: router, EmbedAccreditation: n.memory.EmbedAccreditation,
	})
	n.decisions = n.newDecisions()
	if n.feed, err = n.publishFeed(time.Now(), n.cfg.posture(backendLvl)); err != nil {
		store.Close()
		n.ledger.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("federation feed: %v", err)
	}
	if err := n.registerState(); err != nil {
		store.Close()
		n.ledger.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("metrics: %v", err)
	}
	if err := n.openRoles(); err != nil {
		store.Close()
		n.ledger.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("roles: %v", err)
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

// Config is the effective configuration.
func (n *Node) Config() Config { return n.cfg }

// Fleet is the node's fleet membership, nil when it runs alone.
func (n *Node) Fleet() *fleet.Fleet { return n.fleet }

// FleetLog is the fleet-wide log as this node holds it.
func (n *Node) FleetLog() *fleet.Log { return n.fleetLog }

// openLog opens the node's own log for reading at its latest checkpoint.
func (n *Node) openLog() (*ledger.Reader, error) {
	return ledger.OpenReader(filepath.Join(n.dataDir, "ledger"), n.ID(), n.id.Public())
}

// Serve runs the API on ln, the fleet (when configured) and the admin API on the unix
// socket in the data directory until ctx is done, then shuts down gracefully: it stops
// accepting, lets in-flight requests finish (up to grace), stops replication and
// leaves the fleet. ready, if not nil, is called once every listener is up. Close then
// waits for the audit records and seals the ledger.
func (n *Node) Serve(ctx context.Context, ln net.Listener, grace time.Duration, ready func()) error {
	var adminReady atomic.Pointer[admin.Deps] // the console's view of the node, once the fleet has started
	con, err := n.newConsole(&adminReady)
	if err != nil {
		return err
	}
	defer con.Close()
	metricsLn, err := n.listenMetrics()
	if err != nil {
		return err
	}
	handler := api.NewServer(apiGateway{n.pipeline, n.decisions}, n.log)
	handler.SetMetrics(n.metrics)
	handler.SetReadiness(n.readiness)
	handler.SetFullReceipts(n.cfg.FullReceipts)
	if n.requestLog != nil {
		handler.SetRequestLog(n.requestLog, n.cfg.LogFormat == "json")
	}
	handler.Mount(console.Prefix, con) // the web console, on the same listener
	apiSrv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: api.ReadHeaderTimeout,
		IdleTimeout:       api.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(n.log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 2)
	n.bg.Add(1) // Close waits for it: an expiry in progress finishes before the store closes
	go func() {
		defer n.bg.Done()
		n.memory.RunExpiry(ctx, n.cfg.retention(), n.cfg.Retention.every(), n.log)
	}()
	n.bg.Add(1)
	go func() {
		defer n.bg.Done()
		t := time.NewTicker(time.Minute)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				n.pipeline.FlushRefusals(ctx, false)
			}
		}
	}()
	// A bounded number of connections: a flood of slow clients cannot take every
	// descriptor (each also has its read, write and idle deadlines).
	if n.sso != nil {
		n.bg.Add(1)
		go func() {
			defer n.bg.Done()
			n.sso.Run(ctx) // fetches keys at once when none are cached, then periodically
		}()
	}
	go func() { errc <- apiSrv.Serve(netutil.LimitListener(ln, api.MaxConnections)) }()
	if err := n.startFleet(ctx, ln.Addr().String()); err != nil {
		apiSrv.Close()
		closeListener(metricsLn)
		return fmt.Errorf("fleet: %v", err)
	}
	stopRoles := n.startRoles(ctx, n.fleet)
	adminLn, err := admin.Listen(n.dataDir, func(uid uint32) {
		n.log.Warn("admin socket: a process of another user was refused", "uid", uid)
	})
	if err != nil {
		apiSrv.Close()
		stopRoles()
		closeListener(metricsLn)
		n.stopFleet()
		return err
	}
	deps := n.adminDeps()
	adminReady.Store(&deps)
	adminSrv := &http.Server{Handler: admin.Handler(deps), ReadHeaderTimeout: api.ReadHeaderTimeout}
	go func() { errc <- adminSrv.Serve(adminLn) }()
	var metricsSrv *http.Server
	if metricsLn != nil {
		metricsSrv, n.metricsAddr = n.metricsServer(), metricsLn.Addr().String()
		go n.serveMetrics(metricsSrv, metricsLn) // after the fleet started: scrapes read it
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
	if metricsSrv != nil {
		metricsSrv.Shutdown(sctx) // before the fleet stops: scrapes read it
	}
	err1 := apiSrv.Shutdown(sctx)
	// Leave after the API has drained: requests in flight may still be calling peers.
	stopRoles()
	err3 := n.stopFleet()
	err2 := adminSrv.Shutdown(sctx)
	os.Remove(admin.Socket(n.dataDir))
	return errors.Join(err1, err2, err3)
}

// attestation is how this node's key is held: tpm when it is sealed to a TPM.
func (n *Node) attestation() string {
	if n.tpm != nil {
		return fleet.AttestTPM
	}
	return fleet.AttestSoftware
}

// adminDeps is what the admin API acts on.
func (n *Node) adminDeps() admin.Deps {
	f := n.fleet
	return admin.Deps{
		DataDir: n.dataDir, NodeID: n.ID(), Listen: n.cfg.Listen, Ledger: n.ledger, Principals: n.principals,
		Memory: n.memory, Fleet: n.fleet, FleetLog: n.fleetLog, Feed: n.feed, Replication: n.repl,
		Routes: n.pipeline.Routes, SetReplica: n.setReplica, Cert: n.id.Cert, TrustChanged: n.trustChanged,
		AttestAgain: n.attestAgain, Roles: n.roles,
		Trace: func(ctx context.Context, record string) ([]byte, error) { return n.buildTrace(ctx, f, record) },
	}
}

// Close waits for outstanding audit records, then seals and flushes the ledger.
func (n *Node) Close(ctx context.Context) error {
	n.bg.Wait()
	n.pipeline.FlushRefusals(ctx, true)
	n.pipeline.Wait()
	merr := n.memory.Store.Close()
	return errors.Join(n.ledger.Close(ctx), merr)
}

// audit appends a record of the node's own and waits for it.
func (n *Node) audit(ctx context.Context, rec *oar.Record) error {
	_, _, err := n.ledger.Append(ctx, rec)
	return err
}

// auditKeys records an identity provider's key fetch, cache load or failure.
func (n *Node) auditKeys(e sso.KeyEvent) {
	detail := map[string]any{"jwks_uri": oar.Bounded(e.JWKSURI, oar.MaxOutsideValue), "keys": e.KeyIDs, "added": e.Added, "removed": e.Removed,
		"cached": e.Cached, "fetched": oar.FormatTime(e.Fetched)}
	if e.Err != nil {
		detail["error"] = oar.Bounded(e.Err.Error(), oar.MaxOutsideValue)
	}
	b, _ := json.Marshal(detail)
	if err := n.audit(context.Background(), &oar.Record{Actor: oar.Actor{ID: "node"}, Action: oar.ActionSSOKeys,
		Resource: "issuer/" + oar.Bounded(e.Issuer, oar.MaxOutsideValue), Detail: b}); err != nil {
		n.log.Error("audit identity provider keys", "err", err)
	}
}

// auditRefusal records an egress refusal. The guard calls it before refusing.
func (n *Node) auditRefusal(r egress.Refusal) {
	detail, _ := json.Marshal(map[string]string{"network": r.Network, "address": r.Address, "reason": r.Reason})
	if err := n.audit(context.Background(), &oar.Record{
		Actor: oar.Actor{ID: "node"}, Action: oar.ActionEgressRefuse, Resource: r.Address,
		Decision: &oar.Decision{Effect: "deny", Policies: []string{"egress-allowlist"}}, Detail: detail,
	}); err != nil {
		n.log.Error("audit egress refusal", "err", err)
	}
}

// Bootstrap prepares a fresh data directory: a node identity (with an institution root
// key) if there is none, the default policies, and an admin principal whose API key is
// returned once. It returns "" when the directory was already set up (a node key
// sealed to a TPM counts: only the TPM can open it).
func Bootstrap(dataDir string, now time.Time) (nodeID, apiKey string, err error) {
	if _, err := identity.Load(dataDir); err == nil || errors.Is(err, identity.ErrKeySealed) {
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
