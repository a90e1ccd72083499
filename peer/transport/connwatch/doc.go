// Package connwatch watches the connection of a long response stream:
// ClientContext ends a request's work when its caller hangs up, and
// DeadlineWriter keeps a slow but moving stream's write deadline ahead of
// it. Both httpd (the backup stream) and peer/transport (range streams,
// Merkle trees) use it; it imports nothing of ringkv, nor fasthttp.
package connwatch
