package fleet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"

	"github.com/sios-project/sios/identity/tpm"
)

// Fresh TPM attestation of peers (docs/federation.md, "TPM attestation"; the exchange is
// docs/attestation.md section 8). A peer's identity record with attestation tpm carries
// evidence that Log.Add verified under the EK policy of the peer's institution; that
// shows the peer's keys were bound to a pinned TPM, not that the TPM is there now. So
// this node challenges every such peer when it is admitted (and again every
// AttestRefresh while it stays alive): POST AttestPath over the fleet's mutual TLS
// with a tpm.Challenge, answered by a tpm.Answer. Only a checked answer makes Peers
// report the peer as AttestTPM — what Cedar sees as the Peer's attestation; until
// then, after a failure and once the peer is dead, it is AttestSoftware.

// AttestPath is where a node answers its peers' TPM challenges.
const AttestPath = "/fleet/v1/attest"

// Attestation timing.
const (
	// AttestRefresh is how often a live peer's TPM attestation is renewed.
	AttestRefresh = 10 * time.Minute
	// AttestRetry is how long after a failed attestation the next is tried.
	AttestRetry = 30 * time.Second
	// attestRetryFirst is the first wait after an exchange that could not take place
	// (the peer unreachable, or its fleet API not serving yet); it doubles with each
	// such failure in a row, up to AttestRetry.
	attestRetryFirst = 500 * time.Millisecond
	// attestTimeout bounds one exchange, network included: the TPM's part is
	// milliseconds (docs/attestation.md section 12).
	attestTimeout = 10 * time.Second
)

// Attestor answers TPM challenges with the node's TPM (identity/tpm.Attestor). It must
// be safe for concurrent use.
type Attestor interface {
	Answer(*tpm.Challenge) (*tpm.Answer, error)
}

// Errors of the answering side, for the fleet API to turn into statuses.
var (
	// ErrNoTPM: this node's keys are not sealed to a TPM; it has nothing to answer with.
	ErrNoTPM = errors.New("this node's identity is not bound to a TPM")
	// ErrBadChallenge: the challenge is not a sios-tpm-challenge/1 document.
	ErrBadChallenge = errors.New("malformed TPM challenge")
	// ErrTPMAnswer: the TPM did not answer (a credential made for another TPM's EK does
	// not activate). Its detail stays in this node's log.
	ErrTPMAnswer = errors.New("the TPM could not answer the challenge")
)

// AnswerChallenge is the answering side of the exchange: body is a peer's challenge
// (at most tpm.MaxChallengeSize bytes), the result the canonical answer.
func AnswerChallenge(a Attestor, body []byte) ([]byte, error) {
	if a == nil {
		return nil, ErrNoTPM
	}
	ch, err := tpm.ParseChallenge(body)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadChallenge, err)
	}
	ans, err := a.Answer(ch)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrTPMAnswer, err)
	}
	return ans.Marshal()
}

// Attested is a peer's TPM attestation that this node checked, for the audit log.
type Attested struct {
	Addr string
	*tpm.Attested
}

// attestState is what this node knows of a peer's TPM now.
type attestState struct {
	ek      string        // the EK of the last successful check; "" before one and after a failure
	at      time.Time     // when the last check ended
	retry   time.Duration // after a failure: how long after at the next may run
	missed  int           // exchanges in a row that could not take place (errUnreachable)
	running bool
}

// errUnreachable marks an exchange that could not take place: no connection, or the
// peer's fleet API answered 503 (not serving yet). It is no verdict on the peer's
// TPM: it is retried soon, and not audited.
var errUnreachable = errors.New("the peer could not be reached to attest it")

// Attest challenges node's TPM now and reports what its TPM answered. On success Peers
// reports the node as AttestTPM; on failure as AttestSoftware, and the failure is
// refused (Config.Refused) with its reason, which names identity/tpm's error
// (tpm.ErrStaleNonce, tpm.ErrQuoteSignature, tpm.ErrUnknownEK, …) — unless the
// exchange could not take place at all (the peer unreachable), which is only retried.
func (f *Fleet) Attest(ctx context.Context, node string) (*tpm.Attested, error) {
	f.mu.Lock()
	st := f.attest[node]
	if st == nil {
		st = &attestState{}
		f.attest[node] = st
	}
	st.running = true
	addr := ""
	if p := f.peers[node]; p != nil {
		addr = p.addr
	}
	f.mu.Unlock()
	att, err := f.challenge(ctx, node, addr)
	unreachable := errors.Is(err, errUnreachable)
	f.mu.Lock()
	st.running, st.at, st.ek, st.retry = false, time.Now(), "", AttestRetry
	switch {
	case err == nil:
		st.ek, st.missed = att.EKSHA256, 0
	case unreachable:
		st.retry = min(AttestRetry, attestRetryFirst<<min(st.missed, 16))
		st.missed++
	default:
		st.missed = 0
	}
	retry := st.retry
	current := f.attest[node] == st // not forgotten (the peer died) meanwhile
	f.mu.Unlock()
	if unreachable {
		f.log.Info("fleet: TPM attestation postponed", "node", node, "retry", retry, "err", err)
		f.retryAttest(node, retry)
		return nil, err
	}
	if err != nil {
		f.refuse(Refusal{Node: node, Addr: addr, Reason: "TPM attestation: " + err.Error()}, "attest "+node)
		f.retryAttest(node, retry)
		return nil, err
	}
	if current {
		f.notify()
	}
	if f.cfg.Attested != nil {
		f.cfg.Attested(Attested{Addr: addr, Attested: att})
	}
	return att, nil
}

// challenge runs one exchange with node at addr.
func (f *Fleet) challenge(ctx context.Context, node, addr string) (*tpm.Attested, error) {
	v, ok := f.cfg.Log.NodeView(node)
	if !ok {
		return nil, errors.New("its identity is not in the fleet log")
	}
	ev, ok := f.cfg.Log.Evidence(node)
	if !ok || v.Attestation != AttestTPM {
		return nil, fmt.Errorf("its identity record states attestation %s", v.Attestation)
	}
	key, _ := f.cfg.Log.Key(node)
	// Verified again under the EK policy as it stands now: the operator may have
	// changed it since the identity record was added.
	verified, err := tpm.Verify(ev, node, key, f.cfg.Trust().EKPolicy(v.Institution))
	if err != nil {
		return nil, err
	}
	if addr == "" {
		return nil, fmt.Errorf("%w: no address to reach it at", errUnreachable)
	}
	ch, pending, err := verified.Challenge(time.Now())
	if err != nil {
		return nil, err
	}
	body, err := ch.Marshal()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, attestTimeout)
	defer cancel()
	resp, err := f.Post(ctx, node, addr, AttestPath, body)
	if err != nil {
		var pe *PeerError
		if errors.As(err, &pe) {
			return nil, err // the TLS peer was not the node: no mere outage
		}
		return nil, fmt.Errorf("%w: %v", errUnreachable, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, tpm.MaxAnswerSize+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errUnreachable, err)
	}
	if resp.StatusCode == http.StatusServiceUnavailable {
		return nil, fmt.Errorf("%w: it answered %d: %s", errUnreachable, resp.StatusCode, short(string(bytes.TrimSpace(b))))
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("the peer answered %d: %s", resp.StatusCode, short(string(bytes.TrimSpace(b))))
	}
	ans, err := tpm.ParseAnswer(b)
	if err != nil {
		return nil, err
	}
	return pending.Check(ans, time.Now())
}

// retryAttest tries node again after d, if it is still due then.
func (f *Fleet) retryAttest(node string, d time.Duration) {
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-f.ctx.Done():
		case <-t.C:
			f.maybeAttest(node)
		}
	}()
}

// maybeAttest starts an attestation of node in the background when its identity
// record says tpm and it is due: never checked, failed longer ago than its retry
// wait, or succeeded more than AttestRefresh ago.
func (f *Fleet) maybeAttest(node string) {
	v, ok := f.cfg.Log.NodeView(node)
	if !ok || v.Attestation != AttestTPM || v.Forked {
		return
	}
	f.mu.Lock()
	st := f.attest[node]
	due := st == nil || !st.running &&
		(st.ek == "" && time.Since(st.at) >= st.retry || st.ek != "" && time.Since(st.at) > AttestRefresh)
	if p := f.peers[node]; p == nil || p.state != StateAlive || f.ctx.Err() != nil {
		due = false
	}
	if due {
		if st == nil {
			st = &attestState{}
			f.attest[node] = st
		}
		st.running = true // claimed here, so that one exchange runs at a time
		f.wg.Add(1)
	}
	f.mu.Unlock()
	if !due {
		return
	}
	go func() {
		defer f.wg.Done()
		f.Attest(f.ctx, node)
	}()
}

// AttestAgain drops what this node knows of the TPMs of institution's peers, after
// the EKs pinned for it changed: each is reported as software until it attests again
// under the EKs now pinned, which starts at once. It returns their ids.
func (f *Fleet) AttestAgain(institution string) []string {
	var nodes []string
	f.mu.Lock()
	for node := range f.attest {
		if v, ok := f.cfg.Log.NodeView(node); ok && v.Institution == institution {
			f.forgetAttestationLocked(node)
			nodes = append(nodes, node)
		}
	}
	f.mu.Unlock()
	slices.Sort(nodes)
	for _, node := range nodes {
		f.maybeAttest(node)
	}
	return nodes
}

// forgetAttestation drops what this node knows of node's TPM: a peer that died must
// prove its TPM again when it comes back.
func (f *Fleet) forgetAttestationLocked(node string) { delete(f.attest, node) }

// attestationLocked is what Peers reports for a node whose identity states attested
// (with EK ek): AttestTPM only after a successful check of that EK.
func (f *Fleet) attestationLocked(node, stated, ek string) (string, string) {
	if st := f.attest[node]; stated == AttestTPM && st != nil && st.ek != "" && st.ek == ek {
		return AttestTPM, st.ek
	}
	return AttestSoftware, ""
}
