package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sios-project/sios/egress"
	"github.com/sios-project/sios/internal/files"
	"github.com/sios-project/sios/invoke"
	"github.com/sios-project/sios/jcs"
	"github.com/sios-project/sios/memory"
	"github.com/sios-project/sios/policy"
	"github.com/sios-project/sios/replication"
	"github.com/sios-project/sios/sso"
)

// ConfigFile is the node's optional configuration file in the data directory.
const ConfigFile = "config.json"

// Config is the node configuration. Flags override the file; the file overrides defaults.
type Config struct {
	// Listen is the API address (default 127.0.0.1:7600).
	Listen string `json:"listen,omitempty"`
	// MetricsListen, when set, is the address (host:port) of a separate listener that
	// serves Prometheus metrics at /metrics, unauthenticated: bind it to loopback or
	// the management network (docs/operating.md).
	MetricsListen string `json:"metrics_listen,omitempty"`
	// FullReceipts puts the full receipt of every answer's audit record inline
	// (X-Sios-Receipt-Full), not only when the request asks for it: ~6 KB more per
	// answer (docs/api.md).
	FullReceipts bool `json:"full_receipts,omitempty"`
	// LogFormat is the node log's format: "text" (default) or "json".
	LogFormat string `json:"log_format,omitempty"`
	// Backend is the node-wide default model backend: "builtin" (default) or the base
	// URL of an OpenAI-compatible server, e.g. http://127.0.0.1:11434/v1. It is
	// allowed through the egress guard.
	Backend string `json:"backend,omitempty"`
	// EmbeddingModel, with a network Backend, is the embeddings model memory search
	// re-ranks with. Empty: lexical (BM25) ranking only.
	EmbeddingModel string `json:"embedding_model,omitempty"`
	// Model is the model a brain uses on a network backend when its file names none.
	Model string `json:"model,omitempty"`
	// OIDC are the OpenID Connect identity providers whose users may sign in, and the
	// rules mapping their claims to a tenant, clearance and roles (docs/sso.md).
	OIDC []sso.Issuer `json:"oidc,omitempty"`
	// BackendModels states what the node cannot ask a model server: per model name,
	// whether it takes tools ("tools": false answers without them, retrieving memory
	// into the prompt) and a time budget that replaces the brains' ("timeout": "300s",
	// for a model that generates slowly).
	BackendModels map[string]BackendModel `json:"backend_models,omitempty"`
	// BackendAPIKeyEnv names an environment variable holding a bearer key for backends.
	BackendAPIKeyEnv string `json:"backend_api_key_env,omitempty"`
	// BackendAccreditation is the highest classification the model backends may receive
	// (default SECRET). The builtin backend never leaves the process: TOP-SECRET.
	BackendAccreditation string `json:"backend_accreditation,omitempty"`
	// EgressAllow lists further host:port destinations the node may dial (other model
	// servers named in brain files). Nothing else is ever dialled.
	EgressAllow []string `json:"egress_allow,omitempty"`
	// PrincipalRequestsPerMinute and PrincipalBurst bound each principal's requests
	// across all brains (defaults 600 and 100).
	PrincipalRequestsPerMinute int `json:"principal_requests_per_minute,omitempty"`
	PrincipalBurst             int `json:"principal_burst,omitempty"`
	// Retention forgets memories older than a period: per tenant and per
	// classification, e.g. {"tenants": {"hospital": "2160h"}, "classifications":
	// {"SECRET": "720h"}}; the shorter applicable period wins. Checked every minute.
	Retention RetentionConfig `json:"retention,omitempty"`
	// FleetListen is the fleet address (host:port) for membership and remote calls;
	// empty: the node runs alone.
	FleetListen string `json:"fleet_listen,omitempty"`
	// FleetAdvertise is the fleet address peers dial, when it differs from FleetListen.
	FleetAdvertise string `json:"fleet_advertise,omitempty"`
	// Accreditation is the highest classification this node is accredited for: it caps
	// what any brain here may receive and is the posture it publishes to the fleet.
	// Default: the backends' accreditation (TOP-SECRET with the builtin backend).
	Accreditation string `json:"accreditation,omitempty"`
	// FleetNetworks, when set, are the only networks (CIDR prefixes such as
	// "10.20.0.0/16", or single addresses) the node exchanges fleet traffic with: a
	// peer address outside them is refused before any connection is made (and audited
	// as egress.refuse), and inbound connections from outside are closed unanswered.
	// Empty: any address a trusted peer gives (identity is proven by mutual TLS).
	FleetNetworks []string `json:"fleet_networks,omitempty"`
	// PeerRequestsPerMinute is the rate of remote calls from all peers together that
	// this node serves (default 6000); it is stated in the node's limits record, and
	// calls beyond it are answered 429.
	PeerRequestsPerMinute int `json:"peer_requests_per_minute,omitempty"`
	// Join lists fleet addresses of peers to join at start (any one is enough).
	Join []string `json:"join,omitempty"`
	// Replicas are the peers that keep copies of this node's audit log, with the cadence
	// at which this node tells them its checkpoint.
	Replicas []replication.ReplicaConfig `json:"replicas,omitempty"`
	// ReplicateFor lists the nodes or institution roots of OTHER institutions this node
	// keeps audit copies for when they ask; its own institution's nodes always may.
	ReplicateFor []string `json:"replicate_for,omitempty"`
}

// BackendModel is one entry of Config.BackendModels.
type BackendModel struct {
	Tools   *bool  `json:"tools,omitempty"`
	Timeout string `json:"timeout,omitempty"`
}

// models converts BackendModels; bad entries were refused by check.
func (c Config) models() map[string]invoke.ModelSettings {
	out := map[string]invoke.ModelSettings{}
	for name, m := range c.BackendModels {
		d, _ := time.ParseDuration(m.Timeout)
		out[name] = invoke.ModelSettings{Tools: m.Tools, Timeout: d}
	}
	return out
}

// RetentionConfig is Config.Retention: Go durations by tenant and by classification.
type RetentionConfig struct {
	Tenants         map[string]string `json:"tenants,omitempty"`
	Classifications map[string]string `json:"classifications,omitempty"`
	// Every is how often expired memories are looked for (default "1m").
	Every string `json:"every,omitempty"`
}

// every is the retention check interval.
func (r RetentionConfig) every() time.Duration {
	if d, err := time.ParseDuration(r.Every); err == nil && d > 0 {
		return d
	}
	return time.Minute
}

// retention converts the configuration; bad entries were refused by check.
func (c Config) retention() memory.Retention {
	r := memory.Retention{PerTenant: map[string]time.Duration{}, PerClassification: map[policy.Level]time.Duration{}}
	for t, s := range c.Retention.Tenants {
		if d, err := time.ParseDuration(s); err == nil && d > 0 {
			r.PerTenant[t] = d
		}
	}
	for l, s := range c.Retention.Classifications {
		lvl, err1 := policy.ParseLevel(l)
		d, err2 := time.ParseDuration(s)
		if err1 == nil && err2 == nil && d > 0 {
			r.PerClassification[lvl] = d
		}
	}
	return r
}

// Defaults for the perimeter's rate limits.
const (
	DefaultPrincipalPerMinute = 600
	DefaultPrincipalBurst     = 100
	// DefaultPeerRequestsPerMinute is the rate of calls from peers a node serves (and
	// states in its limits record) unless configured.
	DefaultPeerRequestsPerMinute = 6000
)

// withDefaults fills what the configuration leaves unset.
func (c Config) withDefaults() Config {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.Backend == "" {
		c.Backend = "builtin"
	}
	if c.PrincipalRequestsPerMinute == 0 {
		c.PrincipalRequestsPerMinute = DefaultPrincipalPerMinute
	}
	if c.PrincipalBurst == 0 {
		c.PrincipalBurst = DefaultPrincipalBurst
	}
	if c.PeerRequestsPerMinute == 0 {
		c.PeerRequestsPerMinute = DefaultPeerRequestsPerMinute
	}
	return c
}

// egressRules are the destinations the egress guard admits: the default backend and
// egress_allow.
func (c Config) egressRules() ([]egress.Rule, error) {
	var rules []egress.Rule
	for _, s := range append([]string{c.Backend}, c.EgressAllow...) {
		if s == "builtin" {
			continue
		}
		r, err := egressRule(s)
		if err != nil {
			return nil, err
		}
		rules = append(rules, r)
	}
	oidc, err := sso.EgressRules(c.OIDC)
	if err != nil {
		return nil, err
	}
	return append(rules, oidc...), nil
}

// posture is the highest classification the node is accredited for: its backends'
// accreditation, or TOP-SECRET with the builtin backend (nothing leaves the process),
// lowered by the operator's accreditation.
func (c Config) posture(backendLvl policy.Level) policy.Level {
	lvl := backendLvl
	if c.Backend == "builtin" {
		lvl = policy.TopSecret
	}
	if l, err := policy.ParseLevel(c.Accreditation); err == nil {
		lvl = min(lvl, l)
	}
	return lvl
}

// check refuses configuration the node could not honour.
func (c Config) check() error {
	for t, s := range c.Retention.Tenants {
		if d, err := time.ParseDuration(s); err != nil || d <= 0 {
			return fmt.Errorf("config retention.tenants[%s]: %q is not a positive duration such as \"720h\"", t, s)
		}
	}
	if e := c.Retention.Every; e != "" {
		if d, err := time.ParseDuration(e); err != nil || d <= 0 {
			return fmt.Errorf("config retention.every: %q is not a positive duration such as \"1m\"", e)
		}
	}
	for name, m := range c.BackendModels {
		if m.Timeout == "" {
			continue
		}
		if d, err := time.ParseDuration(m.Timeout); err != nil || d <= 0 || d > 15*time.Minute {
			return fmt.Errorf("config backend_models[%s].timeout: %q is not a duration between 0 and 15m such as \"300s\"", name, m.Timeout)
		}
	}
	if c.MetricsListen != "" {
		if _, _, err := net.SplitHostPort(c.MetricsListen); err != nil {
			return fmt.Errorf("config metrics_listen: %q is not host:port (%v)", c.MetricsListen, err)
		}
	}
	if c.LogFormat != "" && c.LogFormat != "text" && c.LogFormat != "json" {
		return fmt.Errorf("config log_format: %q is neither \"text\" nor \"json\"", c.LogFormat)
	}
	if err := sso.CheckConfig(c.OIDC); err != nil {
		return err
	}
	if c.PeerRequestsPerMinute < 0 {
		return fmt.Errorf("config peer_requests_per_minute: %d is negative", c.PeerRequestsPerMinute)
	}
	if _, err := parseNetworks(c.FleetNetworks); err != nil {
		return fmt.Errorf("config fleet_networks: %v", err)
	}
	for _, r := range c.Replicas {
		if err := r.Check(); err != nil {
			return fmt.Errorf("config replicas: %v", err)
		}
	}
	if c.Accreditation != "" {
		if _, err := policy.ParseLevel(c.Accreditation); err != nil {
			return fmt.Errorf("config accreditation: %v", err)
		}
	}
	for l, s := range c.Retention.Classifications {
		if _, err := policy.ParseLevel(l); err != nil {
			return fmt.Errorf("config retention.classifications: %v", err)
		}
		if d, err := time.ParseDuration(s); err != nil || d <= 0 {
			return fmt.Errorf("config retention.classifications[%s]: %q is not a positive duration such as \"720h\"", l, s)
		}
	}
	return nil
}

// DefaultListen is the API's default address: loopback only.
const DefaultListen = "127.0.0.1:7600"

// LoadConfig reads dataDir/config.json if it exists.
func LoadConfig(dataDir string) (Config, error) {
	var c Config
	path := filepath.Join(dataDir, ConfigFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return c, err
	}
	// Strictly (jcs.DecodeStrict): a misspelt, differently cased or repeated setting is
	// an error naming it, not a setting silently dropped or read as the last of two.
	if err := jcs.DecodeStrict(b, &c); err != nil {
		if strings.Contains(err.Error(), `unknown object member name "audit_prompts"`) {
			return c, fmt.Errorf("%s: audit_prompts is no longer a setting: audit records hold digests of prompts and answers, never their text; remove it", path)
		}
		return c, fmt.Errorf("%s: %v", path, strings.TrimPrefix(err.Error(), "jcs: "))
	}
	return c, nil
}

// egressRule turns a backend URL or host:port into the guard rule that admits it.
func egressRule(s string) (egress.Rule, error) {
	host, port := s, ""
	if u, err := url.Parse(s); err == nil && u.Scheme != "" && u.Host != "" {
		host, port = u.Hostname(), u.Port()
		if port == "" {
			port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
		}
	} else if h, p, err := net.SplitHostPort(s); err == nil {
		host, port = h, p
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 || host == "" {
		return egress.Rule{}, fmt.Errorf("%q is not a URL or host:port with a port", s)
	}
	return egress.Rule{Host: host, Port: n}, nil
}

// EditReplicas adds, replaces or removes a replica in DIR/config.json, keeping every
// other setting as it is.
func EditReplicas(dataDir string, c replication.ReplicaConfig, remove bool) (Config, error) {
	if err := c.Check(); err != nil {
		return Config{}, err
	}
	path := filepath.Join(dataDir, ConfigFile)
	raw := map[string]json.RawMessage{}
	if b, err := os.ReadFile(path); err == nil {
		if err := json.Unmarshal(b, &raw); err != nil {
			return Config{}, fmt.Errorf("%s: %v", path, err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return Config{}, err
	}
	cfg, err := LoadConfig(dataDir)
	if err != nil {
		return Config{}, err
	}
	i := slices.IndexFunc(cfg.Replicas, func(x replication.ReplicaConfig) bool { return x.Node == c.Node })
	switch {
	case remove && i < 0:
		return Config{}, fmt.Errorf("%s is not a designated replica", c.Node)
	case remove:
		cfg.Replicas = slices.Delete(cfg.Replicas, i, i+1)
	case i >= 0:
		cfg.Replicas[i] = c
	default:
		cfg.Replicas = append(cfg.Replicas, c)
	}
	if len(cfg.Replicas) == 0 {
		delete(raw, "replicas")
	} else {
		b, err := json.Marshal(cfg.Replicas)
		if err != nil {
			return Config{}, err
		}
		raw["replicas"] = b
	}
	b, err := json.MarshalIndent(raw, "", "  ")
	if err != nil {
		return Config{}, err
	}
	return cfg, files.Replace(path, append(b, '\n'), 0o600)
}
