package posix

import (
	"os"
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

// syncFS makes everything written to the file system that holds f durable: file data,
// metadata and directory entries alike. It reports write-back errors that happened
// since f was opened. (A variable so that tests can make it fail.)
var syncFS = func(f *os.File) error {
	return unix.Syncfs(int(f.Fd()))
}
