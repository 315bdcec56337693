package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sios-project/sios/api"
	"github.com/sios-project/sios/consent"
	"github.com/sios-project/sios/internal/files"
	"github.com/sios-project/sios/jcs"
)

// sios consent grant|list|revoke: a principal's consent grants, made with its own API
// key through the node that holds its data (POST, GET and DELETE /v1/consents;
// docs/consent.md).

const consentUsage = "consent grant|list|revoke [flags]"

func runConsent(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 || isHelp(args[0]) {
		fmt.Fprintf(e.stderr, "Usage: sios [--data DIR] %s\n\n"+
			"  grant --to ID@ROOTID|ROOTID --action invoke|memory.read [--brain B] [--subject S]... --max LEVEL\n"+
			"        --purpose TEXT --expires DURATION [--uses N] [--retain] [--to-node NODEID] [--json]\n"+
			"                 make a grant over your tenant's data (prints id, expires and the signed grant)\n"+
			"  list [--json]  your grants and their state: active, revoked, expired or used\n"+
			"  revoke ID      revoke one of your grants, at once\n\n"+
			"Each takes --node URL (default http://127.0.0.1:7600) and --api-key K (default $SIOS_API_KEY): the grantor's own key.\n",
			consentUsage)
		if len(args) == 0 {
			return &cliError{err: fmt.Errorf("consent needs grant, list or revoke"), code: exitUsage}
		}
		return nil
	}
	switch args[0] {
	case "grant":
		return consentGrant(ctx, e, args[1:])
	case "list":
		return consentList(ctx, e, args[1:])
	case "revoke":
		return consentRevoke(ctx, e, args[1:])
	}
	return usageError("unknown consent command %q: grant, list or revoke", args[0])
}

// apiClient is a principal's connection to a node's API.
type apiClient struct {
	url, key string
}

func apiFlags(fs interface {
	String(name, value, usage string) *string
}) (nodeURL, apiKey *string) {
	return fs.String("node", "http://127.0.0.1:7600", "the node's API base URL"),
		fs.String("api-key", "", "your API key (default $SIOS_API_KEY)")
}

func newAPIClient(nodeURL, apiKey, cmd string) (*apiClient, error) {
	key := apiKey
	if key == "" {
		key = os.Getenv("SIOS_API_KEY")
	}
	if key == "" {
		return nil, usageError("%s needs an API key: --api-key K or $SIOS_API_KEY", cmd)
	}
	return &apiClient{url: strings.TrimSuffix(nodeURL, "/"), key: key}, nil
}

// do sends one request and decodes a 2xx answer into out; a refusal becomes an error
// naming its status and code.
func (c *apiClient) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.url+path, rd)
	if err != nil {
		return usageError("--node: %v", err)
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := (&http.Client{Timeout: time.Minute}).Do(req)
	if err != nil {
		return withHint(fmt.Errorf("cannot reach the node at %s: %v", c.url, err), "start it with 'sios up', or point --node at it")
	}
	defer resp.Body.Close()
	data, err := files.ReadCapped(resp.Body, maxNodeAnswer, "maxNodeAnswer")
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return nodeRefusal(resp, data)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("the node's answer is not what %s %s returns: %v", method, path, err)
	}
	return nil
}

// stringList is a repeatable flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func consentGrant(ctx context.Context, e *env, args []string) error {
	const usage = "consent grant --to ID@ROOTID|ROOTID --action invoke|memory.read [--brain B] [--subject S]... --max LEVEL --purpose TEXT --expires DURATION [--uses N] [--retain] [--to-node NODEID] [--node URL] [--api-key K] [--json]"
	fs := newFlags(e, "consent grant", usage)
	to := fs.String("to", "", "who the grant is for: an institution's root id, or a principal there as ID@ROOTID ('sios trust list' shows root ids)")
	toNode := fs.String("to-node", "", "narrow the grant to one node of that institution")
	action := fs.String("action", "", "what it covers: invoke (send your data to one brain there) or memory.read (release your tenant's memories about named subjects)")
	brainID := fs.String("brain", "", "the brain (with --action invoke)")
	var subjects stringList
	fs.Var(&subjects, "subject", "a subject whose memories it releases (with --action memory.read; repeat for more)")
	max := fs.String("max", "", "the highest classification it covers")
	purpose := fs.String("purpose", "", "why (recorded, and seen by policy)")
	expires := fs.String("expires", "", "how long it is valid: 30d, 12h, 90m (at most 365d)")
	uses := fs.Int("uses", 0, "how many times it may be used (default: until it expires or is revoked)")
	retain := fs.Bool("retain", false, "let the receiver keep what is released (memory.read)")
	nodeURL, apiKey := apiFlags(fs)
	asJSON := fs.Bool("json", false, "print JSON: id, expires and the signed grant")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 || *to == "" || *action == "" || *max == "" || *purpose == "" || *expires == "" {
		return usageError("usage: sios [--data DIR] %s", usage)
	}
	d, err := parseGrantDuration(*expires)
	if err != nil {
		return usageError("--expires: %v", err)
	}
	c, err := newAPIClient(*nodeURL, *apiKey, "consent grant")
	if err != nil {
		return err
	}
	var out struct {
		ID      string          `json:"id"`
		Expires string          `json:"expires"`
		Grant   json.RawMessage `json:"grant"`
	}
	err = c.do(ctx, "POST", "/v1/consents", api.ConsentRequest{To: *to, ToNode: *toNode, Action: *action, Brain: *brainID,
		Subjects: subjects, MaxClassification: *max, Purpose: *purpose, ExpiresIn: int64(d / time.Second), Uses: *uses, Retain: *retain}, &out)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(e.stdout, out)
	}
	fmt.Fprintf(e.stdout, "grant:   %s\nexpires: %s\n", out.ID, out.Expires)
	fmt.Fprintf(e.stdout, "\nThe signed grant (give it to its audience; 'sios ask --consent FILE' sends it):\n%s\n", out.Grant)
	return nil
}

// parseGrantDuration reads a grant's lifetime: a Go duration (12h, 90m) or whole days
// (30d), within consent.MaxGrantLifetime.
func parseGrantDuration(s string) (time.Duration, error) {
	var d time.Duration
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n <= 0 {
			return 0, fmt.Errorf("%q is not a number of days (30d)", s)
		}
		if n > 365 {
			return 0, fmt.Errorf("%s is longer than a grant may be valid: 365d (MaxGrantLifetime)", s)
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, fmt.Errorf("%q is not a duration: 30d, 12h, 90m", s)
		}
	}
	switch {
	case d < time.Second:
		return 0, fmt.Errorf("%s: a grant is valid for at least a second", s)
	case d > consent.MaxGrantLifetime:
		return 0, fmt.Errorf("%s is longer than a grant may be valid: 365d (MaxGrantLifetime)", s)
	}
	return d, nil
}

func consentList(ctx context.Context, e *env, args []string) error {
	const usage = "consent list [--node URL] [--api-key K] [--json]"
	fs := newFlags(e, "consent list", usage)
	nodeURL, apiKey := apiFlags(fs)
	asJSON := fs.Bool("json", false, "print JSON: id, to, action, max, purpose, expires, state of each")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usageError("usage: sios [--data DIR] %s", usage)
	}
	c, err := newAPIClient(*nodeURL, *apiKey, "consent list")
	if err != nil {
		return err
	}
	var out struct {
		Data []api.ConsentSummary `json:"data"`
	}
	if err := c.do(ctx, "GET", "/v1/consents", nil, &out); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(e.stdout, out.Data)
	}
	if len(out.Data) == 0 {
		fmt.Fprintln(e.stdout, "no grants")
		return nil
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTO\tACTION\tMAX\tEXPIRES\tSTATE\tPURPOSE")
	for _, g := range out.Data {
		what := g.Action
		if g.Brain != "" {
			what += " " + g.Brain
		}
		if len(g.Subjects) > 0 {
			what += " " + strings.Join(g.Subjects, ",")
		}
		state := g.State
		if g.Uses > 0 {
			state = fmt.Sprintf("%s (%d/%d used)", state, g.Used, g.Uses)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", g.ID, g.To, what, g.Max, g.Expires, state, oneLine(g.Purpose, 60))
	}
	return tw.Flush()
}

func consentRevoke(ctx context.Context, e *env, args []string) error {
	const usage = "consent revoke ID [--node URL] [--api-key K] [--json]"
	fs := newFlags(e, "consent revoke", usage)
	nodeURL, apiKey := apiFlags(fs)
	asJSON := fs.Bool("json", false, "print JSON: id, state, revoked")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) != 1 {
		return usageError("usage: sios [--data DIR] %s", usage)
	}
	c, err := newAPIClient(*nodeURL, *apiKey, "consent revoke")
	if err != nil {
		return err
	}
	var out struct {
		ID      string `json:"id"`
		State   string `json:"state"`
		Revoked string `json:"revoked"`
	}
	if err := c.do(ctx, "DELETE", "/v1/consents/"+rest[0], nil, &out); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(e.stdout, out)
	}
	fmt.Fprintf(e.stdout, "grant %s revoked at %s\n", out.ID, out.Revoked)
	return nil
}

// readGrantFile reads a grant a principal was given: the signed grant itself, or what
// 'sios consent grant --json' printed (its grant member), in its canonical bytes.
func readGrantFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(b) > 4*consent.MaxGrantSize {
		return nil, fmt.Errorf("%s is %d bytes: too large to hold a grant (MaxGrantSize %d)", path, len(b), consent.MaxGrantSize)
	}
	var wrapped struct {
		Grant json.RawMessage `json:"grant"`
	}
	if json.Unmarshal(b, &wrapped) == nil && len(wrapped.Grant) > 0 && wrapped.Grant[0] == '{' {
		b = wrapped.Grant
	}
	c, err := jcs.Canonicalize(bytes.TrimSpace(b))
	if err != nil {
		return nil, fmt.Errorf("%s does not hold a grant: %v", path, err)
	}
	if _, err := consent.Parse(c); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	return c, nil
}
