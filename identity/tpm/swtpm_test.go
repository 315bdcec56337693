package tpm

import (
	"testing"

	"github.com/sios-project/sios/internal/swtpmtest"
)

// The tests run swtpm, a real TPM 2.0 simulator (libtpms), one per test TPM, on
// loopback ports (package internal/swtpmtest). They skip when swtpm is not installed,
// except in CI (CI set), which installs it (.ci/run) and so must not skip.

// simulator is one swtpm process and its state.
type simulator struct{ *swtpmtest.Simulator }

type simOptions = swtpmtest.Options

func needTool(t testing.TB, tool string) { t.Helper(); swtpmtest.NeedTool(t, tool) }

// startSimulator starts a fresh TPM for the test; it is stopped when the test ends.
func startSimulator(t testing.TB, opt simOptions) simulator {
	t.Helper()
	return simulator{swtpmtest.Start(t, opt)}
}

func freePortPair(t testing.TB) int { t.Helper(); return swtpmtest.FreePortPair(t) }

// open opens the simulator's TPM for the test.
func (s simulator) open(t testing.TB) *TPM {
	t.Helper()
	tp, err := Open(s.Addr)
	if err != nil {
		t.Fatalf("Open(%s): %v", s.Addr, err)
	}
	t.Cleanup(func() { tp.Close() })
	return tp
}
