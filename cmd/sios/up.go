package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/sios-project/sios/admin"
	"github.com/sios-project/sios/fleet"
	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/identity/tpm"
	"github.com/sios-project/sios/node"
	"github.com/sios-project/sios/oar"
	"github.com/sios-project/sios/policy"
)

func runUp(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "up", "up [--listen ADDR] [--fleet-listen ADDR [--join ADDR[,ADDR...]]] [--backend URL] [--model NAME] [--metrics-listen ADDR] [--log-format text|json] [--tpm DEVICE|HOST:PORT]")
	listen := fs.String("listen", "", "API address (default "+node.DefaultListen+", or config.json's listen)")
	backendURL := fs.String("backend", "", "default model backend: 'builtin' or an OpenAI-compatible base URL such as http://127.0.0.1:11434/v1")
	model := fs.String("model", "", "model to use on the backend for brains whose file names none")
	embeddingModel := fs.String("embedding-model", "", "embeddings model on the backend that memory search re-ranks with")
	fleetListen := fs.String("fleet-listen", "", "fleet address (host:port) for membership and remote calls; empty: run alone")
	fleetAdvertise := fs.String("fleet-advertise", "", "fleet address peers dial, when it differs from --fleet-listen")
	join := fs.String("join", "", "fleet addresses of peers to join, comma-separated (any one is enough)")
	grace := fs.Duration("grace", 30*time.Second, "how long in-flight requests may run on at shutdown")
	metricsListen := fs.String("metrics-listen", "", "serve Prometheus metrics at http://ADDR/metrics, unauthenticated: bind it to loopback or the management network")
	logFormat := fs.String("log-format", "", "the log's format on stderr: text (default) or json")
	tpmAddr := fs.String("tpm", "", "the TPM the node key is sealed to, when it is no longer where 'sios init --tpm' found it")
	args, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(args) > 0 {
		return usageError("up takes no arguments, got %q", args[0])
	}
	if *tpmAddr != "" {
		if _, err := os.Stat(filepath.Join(e.dataDir, identity.NodeKeyFile)); errors.Is(err, os.ErrNotExist) {
			return withHint(fmt.Errorf("%s holds no node identity to unseal with the TPM at %s", e.dataDir, *tpmAddr),
				fmt.Sprintf("initialise it with 'sios --data %s init --tpm %s' first", e.dataDir, *tpmAddr))
		}
	}
	tuneForServing()
	nodeID, adminKey, err := node.Bootstrap(e.dataDir, time.Now())
	if err != nil {
		return err
	}
	// A key sealed to a TPM is unsealed now; the node holds the TPM until it stops.
	var bound *tpm.Node
	var boundAt string
	if sealed, err := keySealed(e.dataDir); err != nil {
		return err
	} else if sealed {
		var closeTPM func()
		if bound, boundAt, closeTPM, err = openTPMNode(e.dataDir, *tpmAddr); err != nil {
			return err
		}
		defer closeTPM()
	} else if *tpmAddr != "" {
		return usageError("--tpm: the node key in %s is not sealed to a TPM (it was initialised without 'sios init --tpm')", e.dataDir)
	}
	cfg, err := node.LoadConfig(e.dataDir)
	if err != nil {
		return err
	}
	if *listen != "" {
		cfg.Listen = *listen
	}
	if *backendURL != "" {
		cfg.Backend = *backendURL
	}
	if *model != "" {
		cfg.Model = *model
	}
	if *embeddingModel != "" {
		cfg.EmbeddingModel = *embeddingModel
	}
	if *fleetListen != "" {
		cfg.FleetListen = *fleetListen
	}
	if *metricsListen != "" {
		cfg.MetricsListen = *metricsListen
	}
	if *logFormat != "" {
		cfg.LogFormat = *logFormat
	}
	if *fleetAdvertise != "" {
		cfg.FleetAdvertise = *fleetAdvertise
	}
	if *join != "" {
		cfg.Join = nil
		for _, a := range strings.Split(*join, ",") {
			if a = strings.TrimSpace(a); a != "" {
				cfg.Join = append(cfg.Join, a)
			}
		}
	}
	if len(cfg.Join) > 0 && cfg.FleetListen == "" {
		return usageError("--join needs --fleet-listen: the address this node gossips on")
	}
	lines := newLineWriter(e.stderr)
	defer lines.Close()
	log, err := newLogger(lines, cfg.LogFormat)
	if err != nil {
		return err
	}
	n, err := node.Open(ctx, node.Options{DataDir: e.dataDir, Config: cfg, Logger: log, RequestLog: lines, TPM: bound})
	if err != nil {
		return err
	}
	if adminKey != "" {
		// The bootstrap principal's creation is the first record after init.
		sp := &policy.StoredPrincipal{Tenant: "default", ID: "admin", Kind: "user", Clearance: "TOP-SECRET", Roles: []string{"admin"}}
		if _, err := admin.AuditPrincipalAdd(ctx, n.Ledger().Append, "bootstrap", sp); err != nil {
			n.Close(context.WithoutCancel(ctx))
			return err
		}
	}
	started := map[string]string{"listen": n.Config().Listen, "backend": n.Config().Backend, "attestation": fleet.AttestSoftware}
	if bound != nil {
		started["attestation"], started["ek_sha256"], started["tpm"] = fleet.AttestTPM, bound.EKSHA256, boundAt
	}
	if _, _, err := n.Ledger().Append(ctx, &oar.Record{Actor: oar.Actor{ID: "operator"}, Action: oar.ActionNodeStart,
		Resource: n.ID(), Detail: mustJSON(started)}); err != nil {
		n.Close(context.WithoutCancel(ctx))
		return err
	}
	ln, err := net.Listen("tcp", n.Config().Listen)
	if err != nil {
		n.Close(context.WithoutCancel(ctx))
		return withHint(fmt.Errorf("listen on %s: %v", n.Config().Listen, err), "choose another address with --listen")
	}
	ready := func() {
		if nodeID != "" {
			fmt.Fprintf(e.stdout, "initialised node %s in %s\n", nodeID, e.dataDir)
			fmt.Fprintf(e.stdout, "bootstrap admin API key (shown once; store it now): %s\n", adminKey)
		}
		fmt.Fprintf(e.stdout, "runtime: GOMAXPROCS=%d on %d CPUs\n", runtime.GOMAXPROCS(0), runtime.NumCPU())
		fmt.Fprintf(e.stdout, "sios node %s serving the OpenAI-compatible API on http://%s/v1 (backend: %s)\n",
			n.ID(), ln.Addr(), n.Config().Backend)
		fmt.Fprintf(e.stdout, "console: http://%s/console/\n", ln.Addr())
		if a := n.MetricsAddr(); a != "" {
			fmt.Fprintf(e.stdout, "metrics: http://%s/metrics\n", a)
		}
		if bound != nil {
			fmt.Fprintf(e.stdout, "identity: key unsealed from the TPM at %s (EK %s)\n", boundAt, bound.EKSHA256)
		}
		if f := n.Fleet(); f != nil {
			fmt.Fprintf(e.stdout, "fleet: listening on %s (mutual TLS)", f.Addr())
			if len(n.Config().Join) > 0 {
				fmt.Fprintf(e.stdout, ", joining %s", strings.Join(n.Config().Join, ","))
			}
			fmt.Fprintln(e.stdout)
		}
		if f, ok := e.stdout.(*os.File); ok {
			f.Sync()
		}
	}
	stopReloads := reloadOnHangup(ctx, n, log)
	serveErr := n.Serve(ctx, ln, *grace, ready)
	stopReloads()
	log.Info("shutting down: finishing audit records and sealing the ledger")
	if err := n.Close(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("close the ledger: %v", err)
	}
	log.Info("stopped", "node", n.ID())
	return serveErr
}

// newLogger is the node's log on w: text (the default) or JSON, one line per event.
func newLogger(w io.Writer, format string) (*slog.Logger, error) {
	opts := &slog.HandlerOptions{Level: slog.LevelInfo}
	switch format {
	case "", "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, usageError("--log-format: %q is neither text nor json", format)
}

// reloadOnHangup reloads the node's policies, brains and trust on each SIGHUP (as
// 'systemctl reload' sends), until the returned function is called.
func reloadOnHangup(ctx context.Context, n *node.Node, log *slog.Logger) func() {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case _, ok := <-hup:
				if !ok {
					return
				}
				r, err := n.Reload(ctx)
				if err != nil {
					log.Error("SIGHUP: reload refused, the node goes on as before", "err", err)
					continue
				}
				log.Info("SIGHUP: reloaded", "policies", r.Policies, "policy_digest", r.PolicyDigest, "brains", r.Brains,
					"policies_added", len(r.PoliciesAdded), "policies_removed", len(r.PoliciesRemoved),
					"brains_added", len(r.BrainsAdded), "brains_removed", len(r.BrainsRemoved), "brains_changed", len(r.BrainsChanged),
					"roots", len(r.Roots), "evicted", len(r.Evicted))
			}
		}
	}()
	return func() {
		signal.Stop(hup)
		close(hup)
		<-done
	}
}
