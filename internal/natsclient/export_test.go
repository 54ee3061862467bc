package natsclient

// SilentBound is how long Drain waits for a server's answer.
const SilentBound = silentBound
