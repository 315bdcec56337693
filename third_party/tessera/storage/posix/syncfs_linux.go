package posix

import (
	"os"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// sios: canSyncFS says whether syncfs(2) reports write-back errors, as Linux does
// from 5.8 on: before, it returned success whatever write-back had failed
// (Config.SyncBatches).
var canSyncFS = sync.OnceValue(func() bool {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return false
	}
	return kernelAtLeast(unix.ByteSliceToString(u.Release[:]), 5, 8)
})

// kernelAtLeast says whether a kernel release ("6.1.0-18-amd64", "5.8-rc1") is
// major.minor or later.
func kernelAtLeast(release string, major, minor int) bool {
	maj, rest, _ := strings.Cut(release, ".")
	digits := strings.IndexFunc(rest, func(r rune) bool { return r < '0' || r > '9' })
	if digits >= 0 {
		rest = rest[:digits]
	}
	m, err1 := strconv.Atoi(maj)
	n, err2 := strconv.Atoi(rest)
	if err1 != nil || err2 != nil {
		return false
	}
	return m > major || m == major && n >= minor
}

// syncFS makes everything written to the file system that holds f durable: file data,
// metadata and directory entries alike. It reports write-back errors that happened
// since f was opened. (A variable so that tests can make it fail.)
var syncFS = func(f *os.File) error {
	return unix.Syncfs(int(f.Fd()))
}
