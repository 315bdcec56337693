package console

import (
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sios-project/sios/ledger"
)

// Verifying the whole log from the console: one verification runs at a time
// (MaxVerifyJobs) in the background; whoever asks while it runs is shown the same
// one. The page shows its progress (a small script polls its status; without
// script, the page refreshes), and its result is kept for VerifyJobKept.

type verifyJob struct {
	ID      string
	By      string // who started it
	Started time.Time

	done, total atomic.Uint64

	mu       sync.Mutex
	finished time.Time            // guarded by mu; zero while running
	result   *ledger.VerifyResult // guarded by mu
	failure  string               // guarded by mu
}

type verifies struct {
	now func() time.Time

	mu      sync.Mutex
	jobs    map[string]*verifyJob // guarded by mu
	running *verifyJob            // guarded by mu
}

func newVerifies(now func() time.Time) *verifies {
	return &verifies{now: now, jobs: map[string]*verifyJob{}}
}

// runningID is the verification in progress, or "".
func (vs *verifies) runningID() string {
	vs.mu.Lock()
	defer vs.mu.Unlock()
	if vs.running == nil {
		return ""
	}
	return vs.running.ID
}

// start starts a verification, or returns the one already running.
func (c *Console) startVerify(by string) *verifyJob {
	vs := c.verifies
	vs.mu.Lock()
	defer vs.mu.Unlock()
	if vs.running != nil {
		return vs.running
	}
	vs.pruneLocked()
	j := &verifyJob{ID: c.keys.newID(), By: by, Started: vs.now()}
	vs.jobs[j.ID], vs.running = j, j
	c.bg.Add(1)
	go func() {
		defer c.bg.Done()
		res, err := c.cfg.Verify(c.ctx, func(done, total uint64) {
			j.total.Store(total)
			j.done.Store(done)
		})
		j.mu.Lock()
		j.finished, j.result = vs.now(), res
		if err != nil {
			j.failure = err.Error()
			var ve *ledger.VerifyError
			if !errors.As(err, &ve) && !errors.Is(err, ledger.ErrInconsistent) {
				c.cfg.Log.Error("console: verify the log", "err", err)
			}
		}
		j.mu.Unlock()
		vs.mu.Lock()
		vs.running = nil
		vs.mu.Unlock()
	}()
	return j
}

// pruneLocked forgets finished verifications older than VerifyJobKept, and the oldest
// beyond KeepVerifyJobs.
func (vs *verifies) pruneLocked() {
	now := vs.now()
	var oldest *verifyJob
	for id, j := range vs.jobs {
		j.mu.Lock()
		fin := j.finished
		j.mu.Unlock()
		if fin.IsZero() {
			continue
		}
		if now.Sub(fin) > VerifyJobKept {
			delete(vs.jobs, id)
			continue
		}
		if oldest == nil || j.Started.Before(oldest.Started) {
			oldest = j
		}
	}
	if len(vs.jobs) >= KeepVerifyJobs && oldest != nil {
		delete(vs.jobs, oldest.ID)
	}
}

func (vs *verifies) get(id string) (*verifyJob, bool) {
	vs.mu.Lock()
	defer vs.mu.Unlock()
	j, ok := vs.jobs[id]
	return j, ok
}

// verifyStatus is a verification as its page and its script see it.
type verifyStatus struct {
	ID       string               `json:"id"`
	By       string               `json:"by"`
	Started  time.Time            `json:"started"`
	Done     uint64               `json:"done"`
	Total    uint64               `json:"total"`
	Finished bool                 `json:"finished"`
	OK       bool                 `json:"ok"`
	Failure  string               `json:"failure,omitempty"`
	Seconds  float64              `json:"seconds"`
	Result   *ledger.VerifyResult `json:"result,omitempty"`
}

func (j *verifyJob) status(now time.Time) verifyStatus {
	j.mu.Lock()
	defer j.mu.Unlock()
	s := verifyStatus{ID: j.ID, By: j.By, Started: j.Started, Done: j.done.Load(), Total: j.total.Load(),
		Finished: !j.finished.IsZero(), Failure: j.failure, Result: j.result}
	end := now
	if s.Finished {
		end = j.finished
		s.OK = j.failure == ""
	}
	s.Seconds = end.Sub(j.Started).Seconds()
	return s
}

// verifyAction starts (or joins) a verification and shows its page.
func verifyAction(w http.ResponseWriter, v *View, _ form) (*Result, error) {
	if !v.mayReadNodeRecords() {
		return nil, errorf(http.StatusForbidden, "verifying the whole log is open to those who may read the node's own audit records; %s may not", v.P.ID)
	}
	j := v.c.startVerify(v.P.ID)
	http.Redirect(w, v.r, "/console/audit/verify/"+j.ID, http.StatusSeeOther)
	return nil, nil
}

func verifyPage() Page {
	return Page{Path: "/console/audit/verify/{job}", Title: "Verify the log", Template: "verify.html", Script: "progress.js",
		Visible: (*View).mayReadNodeRecords, Data: verifyData}
}

// verifyStatusPage is the status the verify page's script polls.
func verifyStatusPage() Page {
	return Page{Path: "/console/audit/verify/{job}/status", Title: "Verification status",
		Visible: (*View).mayReadNodeRecords, Data: func(v *View) (any, error) {
			j, ok := v.c.verifies.get(v.r.PathValue("job"))
			if !ok {
				return nil, errorf(http.StatusNotFound, "no such verification (finished ones are kept for %v)", VerifyJobKept)
			}
			b, _ := json.Marshal(j.status(v.c.cfg.Now()))
			return &Download{ContentType: "application/json", Body: b}, nil
		}}
}

func verifyData(v *View) (any, error) {
	j, ok := v.c.verifies.get(v.r.PathValue("job"))
	if !ok {
		return nil, errorf(http.StatusNotFound, "no such verification (finished ones are kept for %v); start one from the audit page", VerifyJobKept)
	}
	return j.status(v.c.cfg.Now()), nil
}
