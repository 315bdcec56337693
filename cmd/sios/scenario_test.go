package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

// The scenario tests are user stories, one script per story in testdata/scenarios,
// written as the README shows them: every command runs the real sios binary. Besides
// testscript's own commands, a script has:
//
//	up NAME [ARGS...]      start 'sios --data $WORK/NAME up --listen 127.0.0.1:0 ARGS...'
//	                       in the background and wait until it serves; sets NAME_URL
//	                       (the API base URL), NAME_FLEET (its fleet address, if any) and
//	                       NAME_KEY (the bootstrap admin key, on a fresh directory); NAME
//	                       is upper-cased with "-" as "_"; prints what the node printed
//	down NAME              SIGTERM the node and require a clean exit
//	api KEY METHOD URL [BODY]
//	                       an HTTP request with 'Authorization: Bearer KEY'; prints the
//	                       status line, 'receipt: yes|no' and the body
//	jsonenv VAR PATH       set VAR to the member at PATH (a.b.0.c) of the JSON that the
//	                       last command printed
//	waitpeers NAME N       wait until NAME sees N peers alive (sios fleet peers)
//	waitrole NAME ROLE STATE
//	                       wait until NAME shows ROLE in STATE (sios role show --json)
func TestScenarios(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: filepath.Join("testdata", "scenarios"),
		Setup: func(env *testscript.Env) error {
			env.Setenv("PATH", filepath.Dir(siosBin)+string(os.PathListSeparator)+os.Getenv("PATH"))
			env.Setenv("SIOS_DATA", "")
			env.Setenv("SIOS_API_KEY", "")
			env.Values["nodes"] = map[string]*exec.Cmd{}
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"up":        cmdUp,
			"down":      cmdDown,
			"api":       cmdAPI,
			"jsonenv":   cmdJSONEnv,
			"waitpeers": cmdWaitPeers,
			"waitrole":  cmdWaitRole, // role_test.go
		},
	})
}

func nodes(ts *testscript.TestScript) map[string]*exec.Cmd {
	return ts.Value("nodes").(map[string]*exec.Cmd)
}

func cmdUp(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 1 {
		ts.Fatalf("usage: up NAME [ARGS...]")
	}
	name := args[0]
	cmd := exec.Command(siosBin, append([]string{"--data", ts.MkAbs(name), "up", "--listen", "127.0.0.1:0", "--grace", "5s"}, args[1:]...)...)
	cmd.Dir = ts.Getenv("WORK")
	cmd.Env = os.Environ()
	stdout, err := cmd.StdoutPipe()
	ts.Check(err)
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	ts.Check(cmd.Start())
	nodes(ts)[name] = cmd
	ts.Defer(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	wantFleet := strings.Contains(strings.Join(args, " "), "--fleet-listen")
	url, fleet := "", ""
	deadline := time.After(30 * time.Second)
	for url == "" || wantFleet && fleet == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				ts.Fatalf("sios up %s exited before serving: %s", name, stderr.String())
			}
			fmt.Fprintln(ts.Stdout(), l)
			if m := keyLine.FindStringSubmatch(l); m != nil {
				ts.Setenv(envName(name, "KEY"), m[1])
			}
			if m := serveLine.FindStringSubmatch(l); m != nil {
				url = m[1]
			}
			if m := fleetLine.FindStringSubmatch(l); m != nil {
				fleet = m[1]
			}
		case <-deadline:
			ts.Fatalf("sios up %s did not serve within 30s: %s", name, stderr.String())
		}
	}
	go func() {
		for range lines {
		}
	}()
	ts.Setenv(envName(name, "URL"), url)
	ts.Setenv(envName(name, "FLEET"), fleet)
	ts.Logf("%s serves %s (fleet %q)", name, url, fleet)
}

// envName is the variable up sets for a node: NAME_WHAT, upper case, "-" as "_".
func envName(node, what string) string {
	return strings.ToUpper(strings.ReplaceAll(node, "-", "_")) + "_" + what
}

func cmdDown(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: down NAME")
	}
	cmd := nodes(ts)[args[0]]
	if cmd == nil {
		ts.Fatalf("no node %s is running", args[0])
	}
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if (err != nil) != neg {
			ts.Fatalf("sios up %s exited with %v", args[0], err)
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		ts.Fatalf("sios up %s did not stop within 30s of SIGTERM", args[0])
	}
}

func cmdAPI(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 3 || len(args) > 4 {
		ts.Fatalf("usage: api KEY METHOD URL [BODY]")
	}
	var body io.Reader
	if len(args) == 4 {
		body = strings.NewReader(args[3])
	}
	req, err := http.NewRequest(args[1], args[2], body)
	ts.Check(err)
	req.Header.Set("Authorization", "Bearer "+args[0])
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: time.Minute}).Do(req)
	ts.Check(err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	ts.Check(err)
	receipt := "no"
	if resp.Header.Get("X-Sios-Receipt") != "" {
		receipt = "yes"
	}
	fmt.Fprintf(ts.Stdout(), "HTTP %d\nreceipt: %s\n%s\n", resp.StatusCode, receipt, b)
	if (resp.StatusCode >= 400) != neg {
		ts.Fatalf("HTTP %d: %s", resp.StatusCode, b)
	}
}

func cmdJSONEnv(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: jsonenv VAR PATH")
	}
	out := ts.ReadFile("stdout")
	// The JSON is the last line that starts a value (api prints a status first).
	start := strings.IndexAny(out, "{[")
	if start < 0 {
		ts.Fatalf("no JSON in the last output: %s", out)
	}
	var v any
	ts.Check(json.NewDecoder(strings.NewReader(out[start:])).Decode(&v))
	for _, el := range strings.Split(args[1], ".") {
		switch x := v.(type) {
		case map[string]any:
			v = x[el]
		case []any:
			i, err := strconv.Atoi(el)
			if err != nil || i >= len(x) {
				ts.Fatalf("%s: no element %s", args[1], el)
			}
			v = x[i]
		default:
			ts.Fatalf("%s: %s is not in %v", args[1], el, v)
		}
	}
	s, ok := v.(string)
	if !ok {
		b, _ := json.Marshal(v)
		s = string(b)
	}
	ts.Setenv(args[0], s)
}

func cmdWaitPeers(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: waitpeers NAME N")
	}
	want, err := strconv.Atoi(args[1])
	ts.Check(err)
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, _ := exec.Command(siosBin, "--data", ts.MkAbs(args[0]), "fleet", "peers", "--json").Output()
		var peers []struct {
			State string `json:"state"`
		}
		alive := 0
		if json.Unmarshal(out, &peers) == nil {
			for _, p := range peers {
				if p.State == "alive" {
					alive++
				}
			}
		}
		if alive >= want {
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("%s sees %d peers alive after 30s, want %d: %s", args[0], alive, want, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
