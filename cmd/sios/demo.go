package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/sios-project/sios/admin"
	"github.com/sios-project/sios/fleet"
	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/invoke"
	"github.com/sios-project/sios/oar"
)

const demoUsage = `usage: sios demo fleet [--dir DIR]
  Starts a fleet of two institutions on 127.0.0.x addresses — a hospital with two nodes
  and a laboratory with one — sends a request to the hospital for a brain only the
  laboratory offers (refused until the clinician grants consent for her data to go
  there), and shows how it was routed, governed and audited on both sides.`

func runDemo(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 || args[0] != "fleet" {
		return usageError("%s", demoUsage)
	}
	fs := newFlags(e, "demo fleet", "demo fleet [--dir DIR]")
	dir := fs.String("dir", "", "where the nodes' data directories go (default: a new temporary directory, kept)")
	rest, err := parseFlags(fs, args[1:])
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usageError("demo fleet takes no arguments")
	}
	if *dir == "" {
		if *dir, err = os.MkdirTemp("", "sios-demo-fleet-"); err != nil {
			return err
		}
	} else if ents, err := os.ReadDir(*dir); err == nil && len(ents) > 0 {
		return withHint(fmt.Errorf("%s is not empty", *dir), "give --dir a new or empty directory")
	}
	bin, err := os.Executable()
	if err != nil {
		return err
	}
	d := &demo{e: e, dir: *dir, bin: bin}
	defer d.stopAll()
	return d.run(ctx)
}

type demoNode struct {
	name, dir, ip   string
	api, fleetAddr  string
	cmd             *exec.Cmd
	institutionRoot string
}

type demo struct {
	e     *env
	dir   string
	bin   string
	nodes []*demoNode
}

func (d *demo) say(format string, a ...any) { fmt.Fprintf(d.e.stdout, format+"\n", a...) }

func (d *demo) run(ctx context.Context) error {
	d.say("sios fleet demo in %s\n", d.dir)
	// 1. Identities: the hospital's root enrols two nodes, the laboratory's one.
	hospA := &demoNode{name: "hospital-a", ip: "127.0.0.1"}
	hospB := &demoNode{name: "hospital-b", ip: "127.0.0.2"}
	labC := &demoNode{name: "lab-c", ip: "127.0.0.3"}
	d.nodes = []*demoNode{hospA, hospB, labC}
	var hospRoot string
	for _, n := range d.nodes {
		n.dir = filepath.Join(d.dir, n.name)
		root := ""
		if n == hospB {
			root = hospRoot
		}
		res, err := identity.Init(n.dir, n.name, root, time.Now())
		if err != nil {
			return err
		}
		if n == hospA {
			hospRoot = res.RootKeyFile
		}
		n.institutionRoot = res.Node.Cert.RootID
		d.say("  %-11s %s  institution %s", n.name, res.Node.ID(), n.institutionRoot)
	}
	// 2. Each operator pins the other institution's root: trust is decided locally.
	export := func(n *demoNode) []byte {
		c, _ := identity.LoadCertificate(filepath.Join(n.dir, identity.NodeCertFile))
		b, _ := json.Marshal(fleet.ExportRoot(c))
		return b
	}
	for _, pin := range []struct {
		from *demoNode
		to   []*demoNode
	}{{hospA, []*demoNode{labC}}, {labC, []*demoNode{hospA, hospB}}} {
		for _, n := range pin.to {
			if _, err := fleet.AddRoot(n.dir, export(pin.from)); err != nil {
				return err
			}
		}
	}
	d.say("\nthe hospital's nodes pin the laboratory's root, and the laboratory pins the hospital's (sios trust add-root)")
	// 3. Only the laboratory offers the tumour-board brain.
	if err := os.MkdirAll(filepath.Join(labC.dir, "brains"), 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(labC.dir, "brains", "tumour-board.yaml"), []byte(tumourBoardBrain), 0o600); err != nil {
		return err
	}
	d.say("lab-c offers brain tumour-board (SECRET), from %s", filepath.Join(labC.dir, "brains", "tumour-board.yaml"))

	// 4. Start the nodes: B joins A, C joins B and learns of A through it.
	d.say("")
	for _, n := range d.nodes {
		var join string
		switch n {
		case hospB:
			join = hospA.fleetAddr
		case labC:
			join = hospB.fleetAddr
		}
		if err := d.start(ctx, n, join); err != nil {
			return err
		}
		extra := ""
		if join != "" {
			extra = " joining " + join
		}
		d.say("started %-11s API http://%s/v1  fleet %s%s", n.name, n.api, n.fleetAddr, extra)
	}
	ac := admin.Dial(hospA.dir)
	if ac == nil {
		return errors.New("hospital-a's admin socket is not up")
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var routes map[string][]invoke.RouteCandidate
		if err := ac.Do(ctx, "GET", "/admin/fleet/routes", nil, &routes); err != nil {
			return err
		}
		if len(routes["tumour-board"]) > 0 {
			d.say("\nhospital-a's route table: tumour-board → %s (%s, %s)", routes["tumour-board"][0].NodeID,
				routes["tumour-board"][0].State, routes["tumour-board"][0].Institution)
			break
		}
		if time.Now().After(deadline) {
			return errors.New("hospital-a did not learn a route to tumour-board within 30s")
		}
		time.Sleep(100 * time.Millisecond)
	}

	// 5. A clinician at the hospital asks; the OpenAI-compatible API is unchanged.
	var added admin.PrincipalResponse
	if err := ac.Do(ctx, "POST", "/admin/principals", admin.PrincipalRequest{
		Tenant: "default", ID: "dr-jones", Clearance: "SECRET"}, &added); err != nil {
		return err
	}
	prompt := "Summarise: 58-year-old, 2 cm lesion in the left lobe. The board recommends resection and follow-up imaging."
	body, _ := json.Marshal(map[string]any{"model": "tumour-board", "messages": []map[string]string{{"role": "user", "content": prompt}}})
	post := func(path string, body []byte) (*http.Response, []byte, error) {
		req, _ := http.NewRequestWithContext(ctx, "POST", "http://"+hospA.api+path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+added.APIKey)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, nil, err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b, nil
	}
	// Her case would leave the hospital: without her consent grant, nothing is sent.
	d.say("\ndr-jones (SECRET clearance) asks hospital-a's /v1/chat/completions for model tumour-board:")
	resp, answer, err := post("/v1/chat/completions", body)
	if err != nil {
		return err
	}
	var refusal struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	json.Unmarshal(answer, &refusal)
	if resp.StatusCode != http.StatusForbidden || refusal.Error.Code != string(invoke.CodeConsentRequired) {
		return fmt.Errorf("hospital-a answered %d without a grant: %s", resp.StatusCode, answer)
	}
	d.say("  %d %s: nothing was sent to lab-c, another institution, without her grant", resp.StatusCode, refusal.Error.Code)
	grantReq, _ := json.Marshal(map[string]any{"to": labC.institutionRoot, "to_node": d.nodeID(labC), "action": "invoke",
		"brain": "tumour-board", "max_classification": "SECRET", "purpose": "direct care: tumour board opinion on case 7",
		"expires_in": 86400, "uses": 1})
	resp, granted, err := post("/v1/consents", grantReq)
	if err != nil {
		return err
	}
	var grant struct{ ID, Expires string }
	json.Unmarshal(granted, &grant)
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("hospital-a refused the grant: %d %s", resp.StatusCode, granted)
	}
	d.say("\ndr-jones grants consent (sios consent grant --to %s --to-node … --action invoke --brain tumour-board", labC.institutionRoot)
	d.say("  --max SECRET --purpose … --expires 1d --uses 1): grant %s, signed by hospital-a, until %s", grant.ID, grant.Expires)
	d.say("\nand asks again:")
	resp, answer, err = post("/v1/chat/completions", body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("hospital-a answered %d: %s", resp.StatusCode, answer)
	}
	var cc struct {
		Choices []struct {
			Message struct{ Content string } `json:"message"`
		} `json:"choices"`
	}
	json.Unmarshal(answer, &cc)
	if len(cc.Choices) > 0 {
		for _, l := range strings.Split(strings.TrimSpace(cc.Choices[0].Message.Content), "\n") {
			d.say("  │ %s", l)
		}
	}
	d.say("\nwhat happened:")
	d.say("  1. hospital-a does not host tumour-board; its route table names lab-c, alive, of a pinned institution")
	d.say("  2. lab-c is of another institution: hospital-a found dr-jones's grant for lab-c, tumour-board and the data,")
	d.say("     its policy allowed it (invoke, then peer.send, with the grant as context.grant), it recorded the grant's use")
	d.say("     and wrote the admission record before sending")
	d.say("  3. it sent an ML-DSA-65-signed envelope (nonce, expiry, principal, tenant, classification, payload digest,")
	d.say("     and the grant) over mutual TLS (X25519MLKEM768) to lab-c")
	d.say("  4. lab-c verified the envelope and the grant (signed by hospital-a, for lab-c, this brain, this data, unexpired),")
	d.say("     applied its own policy, ran the brain, audited the call and answered with a signed reply naming its record")
	d.say("  5. hospital-a checked the reply's signature and wrote a completion record holding the envelope and the reply")

	// 6. Stop the nodes (their ledgers are sealed on the way down) and show the evidence.
	d.stopAll()
	d.say("\nwhere to look (the nodes are stopped; their data stays in %s):", d.dir)
	d.say("  %s --data %s audit tail               the hospital's records of the call", d.bin, hospA.dir)
	d.say("  %s --data %s audit show %-4s         the completion record, with lab-c's signed reply under parties", d.bin, hospA.dir, d.find(hospA, "brain.complete"))
	d.say("  %s --data %s audit show %-4s              lab-c's record of the same call (actor dr-jones@%s…)", d.bin, labC.dir, d.find(labC, "brain.invoke"), shortID(hospA))
	d.say("  %s --data %s audit verify             re-derive and check every signature and proof", d.bin, hospA.dir)
	d.say("  %s --data %s fleet records             its federation feed (the fleet-wide log, while it runs)", d.bin, hospA.dir)
	d.say("\nto run the fleet again, in three terminals:")
	for i, n := range d.nodes {
		join := ""
		if i > 0 {
			join = " --join " + d.nodes[i-1].fleetAddr
		}
		d.say("  %s --data %s up --listen %s --fleet-listen %s%s", d.bin, n.dir, n.api, n.fleetAddr, join)
	}
	d.say("  then: %s --data %s fleet peers", d.bin, hospA.dir)
	return nil
}

// find returns the index of the last record with this action in n's ledger, as text.
func (d *demo) find(n *demoNode, action string) string {
	e := &env{dataDir: n.dir}
	r, _, err := e.openReader()
	if err != nil {
		return "INDEX"
	}
	raws, err := r.Entries(context.Background(), 0, r.Size())
	if err != nil {
		return "INDEX"
	}
	for i := len(raws) - 1; i >= 0; i-- {
		if en, err := oar.Parse(raws[i]); err == nil && en.Record != nil && en.Record.Action == action {
			return fmt.Sprint(i)
		}
	}
	return "INDEX"
}

func (d *demo) nodeID(n *demoNode) string {
	c, err := identity.LoadCertificate(filepath.Join(n.dir, identity.NodeCertFile))
	if err != nil {
		return ""
	}
	return c.NodeID
}

func shortID(n *demoNode) string {
	id, err := identity.LoadCertificate(filepath.Join(n.dir, identity.NodeCertFile))
	if err != nil || len(id.NodeID) < 12 {
		return ""
	}
	return id.NodeID[:12]
}

const tumourBoardBrain = `id: tumour-board
kind: domain
title: Tumour board assistant
description: Summarises multidisciplinary tumour board cases.
system_prompt: You summarise tumour board cases for the referring clinician.
backend: builtin
builtin: summarise
classification: SECRET
`

// freePort picks a free TCP port on ip.
func freePort(ip string) (string, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return "", fmt.Errorf("listen on %s: %v (the demo needs the loopback addresses 127.0.0.1-3)", ip, err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// start runs 'sios up' for n, its output in n.dir/up.log, and waits until it serves.
func (d *demo) start(ctx context.Context, n *demoNode, join string) error {
	var err error
	if n.api, err = freePort(n.ip); err != nil {
		return err
	}
	if n.fleetAddr, err = freePort(n.ip); err != nil {
		return err
	}
	args := []string{"--data", n.dir, "up", "--listen", n.api, "--fleet-listen", n.fleetAddr, "--grace", "5s"}
	if join != "" {
		args = append(args, "--join", join)
	}
	logf, err := os.Create(filepath.Join(n.dir, "up.log"))
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, d.bin, args...)
	cmd.Stderr = logf
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	n.cmd = cmd
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		sent := false
		for sc.Scan() {
			fmt.Fprintln(logf, sc.Text())
			if !sent && strings.HasPrefix(sc.Text(), "fleet: listening") {
				ready <- true
				sent = true
			}
		}
		if !sent {
			ready <- false
		}
	}()
	select {
	case ok := <-ready:
		if !ok {
			cmd.Wait()
			log, _ := os.ReadFile(filepath.Join(n.dir, "up.log"))
			return fmt.Errorf("%s did not start: %s", n.name, bytes.TrimSpace(log))
		}
	case <-time.After(30 * time.Second):
		return fmt.Errorf("%s did not start within 30s; see %s", n.name, filepath.Join(n.dir, "up.log"))
	}
	return nil
}

// stopAll stops the nodes gracefully (SIGTERM: in-flight work finishes, ledgers seal).
func (d *demo) stopAll() {
	for _, n := range d.nodes {
		if n.cmd == nil || n.cmd.ProcessState != nil {
			continue
		}
		n.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, n := range d.nodes {
		if n.cmd == nil || n.cmd.ProcessState != nil {
			continue
		}
		done := make(chan struct{})
		go func() { n.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			n.cmd.Process.Kill()
			<-done
		}
	}
}
