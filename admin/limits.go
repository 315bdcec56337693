package admin

// Caps on the admin API.
const (
	// maxSocketPath is the longest unix socket path the kernel takes (sun_path, less NUL).
	maxSocketPath = 107
	// maxBody bounds an admin request body.
	maxBody = 1 << 20
)
