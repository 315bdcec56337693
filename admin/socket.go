package admin

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
)

// The admin socket is DIR/admin.sock, mode 0600, and nowhere else: never in a shared
// directory where another local user could create it first. When that path is too long
// for a unix socket address (108 bytes), it is reached through the data directory's
// open file descriptor (/proc/self/fd/N/admin.sock), which names the same file. Both
// ends check who is at the other end (SO_PEERCRED): the node accepts only processes of
// the data directory's owner, and the CLI talks only to a node run by that owner — so a
// local attacker can neither use the socket nor impersonate the node on it.

// SocketName is the admin socket's name in the data directory.
const SocketName = "admin.sock"

// Socket is the admin socket's path.
func Socket(dataDir string) string { return filepath.Join(dataDir, SocketName) }

// socketAddr is the address to bind or dial for dataDir's socket, and a closer for the
// directory descriptor it may hold open.
func socketAddr(dataDir string) (string, func(), error) {
	path := Socket(dataDir)
	if len(path) <= maxSocketPath {
		return path, func() {}, nil
	}
	d, err := os.Open(dataDir)
	if err != nil {
		return "", nil, err
	}
	short := fmt.Sprintf("/proc/self/fd/%d/%s", d.Fd(), SocketName)
	if _, err := os.Stat(fmt.Sprintf("/proc/self/fd/%d", d.Fd())); err != nil {
		d.Close()
		return "", nil, fmt.Errorf("admin socket: %s is longer than a unix socket address allows (%d bytes) and /proc is not available: use a shorter data directory path", path, maxSocketPath)
	}
	return short, func() { d.Close() }, nil
}

// owner is the uid that owns the data directory.
func owner(dataDir string) (uint32, error) {
	fi, err := os.Stat(dataDir)
	if err != nil {
		return 0, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, errors.New("admin socket: cannot read the data directory's owner")
	}
	return st.Uid, nil
}

// peerUID is the uid of the process at the other end of a unix connection.
func peerUID(c net.Conn) (uint32, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return 0, errors.New("not a unix socket")
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return 0, err
	}
	var cred *syscall.Ucred
	var serr error
	if err := raw.Control(func(fd uintptr) {
		cred, serr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil {
		return 0, err
	}
	if serr != nil {
		return 0, serr
	}
	return cred.Uid, nil
}

// listener accepts only connections from processes of the data directory's owner.
type listener struct {
	net.Listener
	uid     uint32
	release func()
	refused func(uid uint32)
}

func (l *listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		uid, err := peerUID(c)
		if err == nil && uid == l.uid {
			return c, nil
		}
		if l.refused != nil {
			l.refused(uid)
		}
		c.Close()
	}
}

func (l *listener) Close() error {
	err := l.Listener.Close()
	l.release()
	return err
}

// Listen listens on the admin socket of dataDir, accepting only processes of the data
// directory's owner (refused, if not nil, hears of the others). The caller holds the
// data directory (its ledger lock), so a socket left by a killed node is removed first.
func Listen(dataDir string, refused func(uid uint32)) (net.Listener, error) {
	uid, err := owner(dataDir)
	if err != nil {
		return nil, fmt.Errorf("admin socket: %v", err)
	}
	addr, release, err := socketAddr(dataDir)
	if err != nil {
		return nil, err
	}
	os.Remove(addr)
	ln, err := net.Listen("unix", addr)
	if err != nil {
		release()
		return nil, fmt.Errorf("admin socket: %v", err)
	}
	if err := os.Chmod(addr, 0o600); err != nil {
		ln.Close()
		release()
		return nil, err
	}
	return &listener{Listener: ln, uid: uid, release: release, refused: refused}, nil
}

// errImpostor marks an admin socket served by someone other than the data directory's
// owner.
var errImpostor = errors.New("not the node")

// dial connects to dataDir's admin socket and checks that the node at the other end
// runs as the data directory's owner.
func dial(ctx context.Context, dataDir string) (net.Conn, error) {
	uid, err := owner(dataDir)
	if err != nil {
		return nil, err
	}
	addr, release, err := socketAddr(dataDir)
	if err != nil {
		return nil, err
	}
	defer release()
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", addr)
	if err != nil {
		return nil, err
	}
	peer, err := peerUID(c)
	if err != nil || peer != uid {
		c.Close()
		return nil, fmt.Errorf("%w: admin socket %s is served by uid %d, not by the data directory's owner (uid %d): refusing to talk to it", errImpostor, Socket(dataDir), peer, uid)
	}
	return c, nil
}
