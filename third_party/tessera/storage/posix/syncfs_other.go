//go:build !linux

package posix

import "os"

// sios: without syncfs(2), every file is written as upstream (Config.SyncBatches).
func canSyncFS() bool { return false }

var syncFS = func(*os.File) error { return nil }
