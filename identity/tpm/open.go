package tpm

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
	"github.com/google/go-tpm/tpm2/transport/linuxtpm"
)

// Open opens the TPM at addr:
//
//   - a device path such as /dev/tpmrm0 (the kernel's resource manager; /dev/tpm0 works
//     when nothing else uses the TPM);
//   - a Unix socket path of a TPM simulator (swtpm socket --server type=unixio,path=P);
//   - HOST:PORT of a TPM simulator on loopback (swtpm socket --server type=tcp,port=PORT):
//     PORT carries TPM commands and PORT+1 is its control channel
//     (--ctrl type=tcp,port=PORT+1), used only when the simulator has not been powered
//     on yet, to initialise it before TPM2_Startup.
//
// A TPM reached over the network would put the key material on the wire, so HOST must
// be a loopback address (127.0.0.0/8, ::1 or localhost).
func Open(addr string) (*TPM, error) {
	if addr == "" {
		return nil, errors.New("no TPM given: name a device (/dev/tpmrm0) or a TPM simulator's HOST:PORT")
	}
	if addr[0] == '/' {
		return openPath(addr)
	}
	cmd, ctrl, err := SimulatorAddrs(addr)
	if err != nil {
		return nil, err
	}
	conn, err := net.DialTimeout("tcp", cmd, dialTimeout)
	if err != nil {
		return nil, fmt.Errorf("TPM simulator at %s: %v", addr, err)
	}
	t := &TPM{addr: addr, tr: &streamTPM{conn: conn, busy: busyTimeout}}
	if err := t.startup(func() error { return powerOn("tcp", ctrl) }); err != nil {
		conn.Close()
		return nil, fmt.Errorf("TPM simulator at %s: %w", addr, err)
	}
	if err := flushLeftovers(t.tr); err != nil {
		conn.Close()
		return nil, fmt.Errorf("TPM simulator at %s: %w", addr, err)
	}
	return t, nil
}

func openPath(path string) (*TPM, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("TPM %s: %v", path, err)
	}
	switch {
	case st.Mode()&os.ModeDevice != 0:
		tr, err := linuxtpm.Open(path)
		if err != nil {
			return nil, fmt.Errorf("TPM %s: %v", path, err)
		}
		// The firmware (or the kernel) has started a hardware TPM.
		return &TPM{addr: path, tr: tr}, nil
	case st.Mode()&os.ModeSocket != 0:
		conn, err := net.DialTimeout("unix", path, dialTimeout)
		if err != nil {
			return nil, fmt.Errorf("TPM simulator at %s: %v", path, err)
		}
		t := &TPM{addr: path, tr: &streamTPM{conn: conn, busy: busyTimeout}}
		if err := t.startup(func() error {
			return errors.New("it needs its control channel to be initialised; start swtpm with --flags not-need-init,startup-clear")
		}); err != nil {
			conn.Close()
			return nil, fmt.Errorf("TPM simulator at %s: %w", path, err)
		}
		if err := flushLeftovers(t.tr); err != nil {
			conn.Close()
			return nil, fmt.Errorf("TPM simulator at %s: %w", path, err)
		}
		return t, nil
	default:
		return nil, fmt.Errorf("TPM %s is neither a device nor a socket (mode %s)", path, st.Mode())
	}
}

// SimulatorAddrs checks a TPM simulator's HOST:PORT and returns the addresses of its
// command channel and of its control channel (PORT+1). HOST must be loopback.
func SimulatorAddrs(addr string) (cmd, ctrl string, err error) {
	host, portText, err := net.SplitHostPort(addr)
	if err != nil {
		return "", "", fmt.Errorf("TPM %q is neither a device path nor HOST:PORT: %v", addr, err)
	}
	port, err := strconv.ParseUint(portText, 10, 16)
	if err != nil || port == 0 || port == 65535 {
		return "", "", fmt.Errorf("TPM simulator %s: port must be 1–65534 (the control channel is PORT+1)", addr)
	}
	if host == "localhost" {
		host = "127.0.0.1"
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.IsLoopback() {
		return "", "", fmt.Errorf("TPM simulator %s: the host must be a loopback address (127.0.0.1, ::1 or localhost): "+
			"TPM commands carry sealed key material and must not cross a network", addr)
	}
	return net.JoinHostPort(host, portText), net.JoinHostPort(host, strconv.FormatUint(port+1, 10)), nil
}

// startup brings a simulator to the state a booted machine's TPM is in. A TPM already
// started answers TPM2_Startup with TPM_RC_INITIALIZE, which is success here. A swtpm
// that has not been powered on answers TPM_RC_FAILURE; only then does powerOn
// initialise it through its control channel, and TPM2_Startup is sent again. Any other
// failure (no answer, above all: another client holds the simulator) is returned as
// it is: initialising a simulator in use would reset it under its other client.
func (t *TPM) startup(powerOn func() error) error {
	err := t.sendStartup()
	switch {
	case err == nil || errors.Is(err, tpm2.TPMRCInitialize):
		return nil
	case !errors.Is(err, tpm2.TPMRCFailure):
		return fmt.Errorf("TPM2_Startup: %w", err)
	}
	if perr := powerOn(); perr != nil {
		return fmt.Errorf("TPM2_Startup: %v; powering it on: %v", err, perr)
	}
	if err := t.sendStartup(); err != nil && !errors.Is(err, tpm2.TPMRCInitialize) {
		return fmt.Errorf("TPM2_Startup after power-on: %v", err)
	}
	return nil
}

func (t *TPM) sendStartup() error {
	_, err := tpm2.Startup{StartupType: tpm2.TPMSUClear}.Execute(t.tr)
	return err
}

// flushLeftovers flushes the transient objects and sessions a simulator still holds from
// an earlier client that did not flush them (one that crashed, say). A simulator has no
// resource manager and room for three transient objects, and sios is its only client.
func flushLeftovers(tr transport.TPM) error {
	for _, ht := range []tpm2.TPMHT{tpm2.TPMHTTransient, tpm2.TPMHTHMACSession, tpm2.TPMHTPolicySession} {
		rsp, err := tpm2.GetCapability{Capability: tpm2.TPMCapHandles, Property: uint32(ht) << 24, PropertyCount: 64}.Execute(tr)
		if err != nil {
			return fmt.Errorf("listing handles: %v", err)
		}
		hs, err := rsp.CapabilityData.Data.Handles()
		if err != nil {
			return fmt.Errorf("listing handles: %v", err)
		}
		for _, h := range hs.Handle {
			if _, err := (tpm2.FlushContext{FlushHandle: h}).Execute(tr); err != nil {
				return fmt.Errorf("flushing handle %#x left by an earlier client: %v", uint32(h), err)
			}
		}
	}
	return nil
}
