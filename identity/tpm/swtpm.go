package tpm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"
)

// streamTPM carries TPM commands over a stream socket as swtpm's command channel
// expects them: the raw command bytes, answered by the raw response, which announces
// its own length in its header (TPM 2.0 Part 1, "Command/Response Structure").
// (go-tpm's tcp transport speaks the Microsoft simulator's framing instead, which
// swtpm does not.)
type streamTPM struct {
	conn net.Conn
	// busy, when set, is how long the next command may wait for its answer; later
	// commands get commandTimeout. A simulator serves one client at a time, so the
	// first command waits for as long as another client holds it.
	busy time.Duration
}

// tpmHeaderSize is a response header: tag (2 bytes), size (4), response code (4).
const tpmHeaderSize = 10

// Send implements transport.TPM.
func (s *streamTPM) Send(cmd []byte) ([]byte, error) {
	timeout := commandTimeout
	if s.busy > 0 {
		timeout, s.busy = s.busy, 0
	}
	if err := s.conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		return nil, err
	}
	if _, err := s.conn.Write(cmd); err != nil {
		return nil, fmt.Errorf("sending a TPM command: %v", err)
	}
	var hdr [tpmHeaderSize]byte
	if _, err := io.ReadFull(s.conn, hdr[:]); err != nil {
		if timeout < commandTimeout && errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, fmt.Errorf("no answer within %v: is another process using this TPM simulator? It serves one client at a time", timeout)
		}
		return nil, fmt.Errorf("reading a TPM response: %v", err)
	}
	size := binary.BigEndian.Uint32(hdr[2:6])
	if size < tpmHeaderSize || size > MaxTPMResponse {
		return nil, fmt.Errorf("TPM response announces %d bytes, outside %d–%d (MaxTPMResponse)", size, tpmHeaderSize, MaxTPMResponse)
	}
	rsp := make([]byte, size)
	copy(rsp, hdr[:])
	if _, err := io.ReadFull(s.conn, rsp[tpmHeaderSize:]); err != nil {
		return nil, fmt.Errorf("reading a TPM response: %v", err)
	}
	return rsp, nil
}

// Close implements io.Closer.
func (s *streamTPM) Close() error { return s.conn.Close() }

// swtpm control channel commands (swtpm's include/swtpm/tpm_ioctl.h, "Commands used by
// the non-CUSE TPMs"): a big-endian command code followed by its request; every answer
// starts with a big-endian result code, 0 for success.
const (
	swtpmCmdInit     = 0x02 // CMD_INIT: request init_flags (uint32)
	swtpmCmdShutdown = 0x03 // CMD_SHUTDOWN: no request; the simulator exits
)

// powerOn initialises a swtpm through its control channel (what a machine's power-on
// does to its TPM). TPM2_Startup must follow.
func powerOn(network, ctrl string) error {
	return swtpmControl(network, ctrl, swtpmCmdInit, []byte{0, 0, 0, 0})
}

// swtpmControl sends one control command and checks its result.
func swtpmControl(network, ctrl string, cmd uint32, req []byte) error {
	conn, err := net.DialTimeout(network, ctrl, dialTimeout)
	if err != nil {
		return fmt.Errorf("control channel %s: %v", ctrl, err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(dialTimeout)); err != nil {
		return err
	}
	msg := binary.BigEndian.AppendUint32(nil, cmd)
	if _, err := conn.Write(append(msg, req...)); err != nil {
		return fmt.Errorf("control channel %s: %v", ctrl, err)
	}
	var res [4]byte
	if _, err := io.ReadFull(conn, res[:]); err != nil {
		return fmt.Errorf("control channel %s: reading the result of command %#x: %v", ctrl, cmd, err)
	}
	if rc := binary.BigEndian.Uint32(res[:]); rc != 0 {
		return fmt.Errorf("control channel %s: command %#x failed with TPM result %#x", ctrl, cmd, rc)
	}
	return nil
}
