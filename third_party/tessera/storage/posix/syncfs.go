package posix

import (
	"strconv"
	"strings"
)

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
