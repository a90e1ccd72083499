package httpd

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/ringkv/ringkv/peer/kv"
)

// Client authentication: bearer tokens and TLS client certificates mapped
// to roles by an auth file (--auth-file). The file holds one credential a
// line:
//
//	# comment
//	ROLE sha256:HEX [PREFIX]   a bearer token, by the hex SHA-256 of it
//	ROLE cn:NAME [PREFIX]      a verified TLS client certificate, by CommonName
//
// ROLE is read, readwrite, admin or metrics. PREFIX (read and readwrite
// only) restricts the credential to keys that start with it. A token (or
// name) may appear on several lines: it then holds each line's grant. The
// file names only hashes, so it reveals no token; tokens must be random
// (`openssl rand -hex 32`), since a plain SHA-256 adds no work factor.

// Role is what a credential may do. read < readwrite < admin: each
// includes the one before. metrics stands apart: /metrics only (admin may
// scrape too).
type Role uint8

// The roles, in the order of what they include.
const (
	RoleNone Role = iota
	RoleMetrics
	RoleRead
	RoleReadWrite
	RoleAdmin
)

var roleNames = [...]string{RoleNone: "none", RoleMetrics: "metrics", RoleRead: "read", RoleReadWrite: "readwrite", RoleAdmin: "admin"}

func (r Role) String() string {
	if int(r) < len(roleNames) {
		return roleNames[r]
	}
	return "role(" + strconv.Itoa(int(r)) + ")"
}

func parseRole(s string) (Role, bool) {
	for r, n := range roleNames {
		if n == s && Role(r) != RoleNone {
			return Role(r), true
		}
	}
	return RoleNone, false
}

// grant is one line of an auth file.
type grant struct {
	line   int
	role   Role
	hash   [sha256.Size]byte // for a token; zero for a certificate name
	cn     string            // for a certificate; "" for a token
	prefix string
}

// permits reports whether g allows an operation that needs role need.
// For a keyed operation, key is its key (a scan's prefix), nil if it
// could not be told; a grant's prefix then must start it.
func (g *grant) permits(need Role, key []byte, keyed bool) bool {
	switch {
	case need == RoleMetrics:
		return g.role == RoleMetrics || g.role == RoleAdmin
	case g.role == RoleMetrics || g.role < need:
		return false
	case g.prefix == "" || !keyed:
		return true
	}
	return key != nil && bytes.HasPrefix(key, []byte(g.prefix))
}

// authSet is one parsed auth file. It is immutable.
type authSet struct {
	grants []grant
	// creds groups the grants by credential (token hash or certificate
	// name), each with its log name built once, so that a request costs
	// no allocation.
	creds []*identity
	// hashes are the token credentials' hashes, contiguous, and tokens
	// their identities, in the same order.
	hashes [][sha256.Size]byte
	tokens []*identity
	// hash of the file's bytes, to tell a change from a touch.
	sum [sha256.Size]byte
}

// maxAuthFileSize bounds what an auth file may hold: a typo naming a big
// file should fail, not fill memory.
const maxAuthFileSize = 4 << 20

// parseAuthFile parses the content of an auth file. Its errors name the
// line.
func parseAuthFile(b []byte) (*authSet, error) {
	set := &authSet{sum: sha256.Sum256(b)}
	for i, line := range strings.Split(string(b), "\n") {
		n := i + 1
		line = strings.TrimSuffix(line, "\r")
		if j := strings.IndexByte(line, '#'); j >= 0 {
			line = line[:j]
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) < 2 || len(f) > 3 {
			return nil, fmt.Errorf("line %d: want ROLE sha256:HEX [PREFIX] or ROLE cn:NAME [PREFIX], got %d fields", n, len(f))
		}
		role, ok := parseRole(f[0])
		if !ok {
			return nil, fmt.Errorf("line %d: unknown role %q: want read, readwrite, admin or metrics", n, f[0])
		}
		g := grant{line: n, role: role}
		kind, val, _ := strings.Cut(f[1], ":")
		switch kind {
		case "sha256":
			if len(val) != 2*sha256.Size {
				return nil, fmt.Errorf("line %d: sha256: wants %d hex digits (the SHA-256 of the token), got %d", n, 2*sha256.Size, len(val))
			}
			if _, err := hex.Decode(g.hash[:], []byte(val)); err != nil {
				return nil, fmt.Errorf("line %d: sha256: not hex", n)
			}
		case "cn":
			if val == "" {
				return nil, fmt.Errorf("line %d: cn: wants a certificate CommonName", n)
			}
			g.cn = val
		default:
			return nil, fmt.Errorf("line %d: credential %q: want sha256:HEX or cn:NAME", n, clipString(f[1], 40))
		}
		if len(f) == 3 {
			if role != RoleRead && role != RoleReadWrite {
				return nil, fmt.Errorf("line %d: a key prefix applies only to read and readwrite, not %s", n, role)
			}
			g.prefix = f[2]
		}
		set.grants = append(set.grants, g)
	}
	set.group()
	return set, nil
}

// group builds creds from grants.
func (a *authSet) group() {
	byKey := map[string]*identity{}
	for _, g := range a.grants {
		k := "h" + string(g.hash[:])
		if g.cn != "" {
			k = "c" + g.cn
		}
		id := byKey[k]
		if id == nil {
			id = &identity{hash: g.hash, cn: g.cn}
			byKey[k] = id
			a.creds = append(a.creds, id)
		}
		id.grants = append(id.grants, g)
		if g.prefix != "" {
			id.restricted = true
		}
	}
	for _, id := range a.creds {
		if id.cn == "" {
			a.hashes = append(a.hashes, id.hash)
			a.tokens = append(a.tokens, id)
		}
		var b strings.Builder
		if id.cn != "" {
			b.WriteString("cn=" + strconv.Quote(id.cn) + " ")
		}
		for i, g := range id.grants {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, "line %d (%s", g.line, g.role)
			if g.prefix != "" {
				fmt.Fprintf(&b, " %q", g.prefix)
			}
			b.WriteByte(')')
		}
		id.who = b.String()
	}
}

func clipString(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// identity is one credential of the auth file, as a request presents
// it: its grants, and its name for the log (the auth file line(s) and
// role, and the certificate name; never the token). It is immutable.
type identity struct {
	hash       [sha256.Size]byte // for a token; zero for a certificate name
	cn         string            // for a certificate; "" for a token
	grants     []grant
	restricted bool // some grant has a key prefix: the request's key matters
	who        string
}

func (id *identity) permits(need Role, key []byte, keyed bool) bool {
	for i := range id.grants {
		if id.grants[i].permits(need, key, keyed) {
			return true
		}
	}
	return false
}

// match returns the credential of a token (by its hash) or, with token
// nil, of a certificate name; nil if the file has none. Every credential
// is compared, whatever matched before, and in constant time: how long
// matching takes says nothing about which hashes the file holds.
func (a *authSet) match(token []byte, cn string) *identity {
	var found *identity
	if token != nil {
		h := sha256.Sum256(token)
		for i := range a.hashes {
			// The branch only tells that some credential matched, which
			// the answer tells anyway.
			if diff32(&h, &a.hashes[i]) == 0 {
				found = a.tokens[i]
			}
		}
	} else if cn != "" {
		for _, id := range a.creds {
			if id.cn != "" && subtle.ConstantTimeCompare([]byte(cn), []byte(id.cn)) == 1 {
				found = id
			}
		}
	}
	return found
}

// diff32 is zero if and only if a and b are equal. It takes the same time
// whatever they hold, as subtle.ConstantTimeCompare, but without its
// per-call cost, which over a file of many tokens adds up on every request.
func diff32(a, b *[sha256.Size]byte) uint64 {
	var v uint64
	for i := 0; i < sha256.Size; i += 8 {
		v |= binary.LittleEndian.Uint64(a[i:]) ^ binary.LittleEndian.Uint64(b[i:])
	}
	return v
}

// ParseBearer returns the token of an "Authorization: Bearer TOKEN"
// header value. The scheme is case-insensitive (RFC 7235); the token is
// RFC 6750's token68: at least one of A-Z a-z 0-9 - . _ ~ + /, then any
// '=' padding. Anything else is not a bearer token.
func ParseBearer(h []byte) ([]byte, bool) {
	const scheme = "bearer "
	if len(h) <= len(scheme) || !strings.EqualFold(string(h[:len(scheme)]), scheme) {
		return nil, false
	}
	t := bytes.TrimLeft(h[len(scheme):], " ")
	t = bytes.TrimRight(t, " \t")
	i := 0
	for i < len(t) && isToken68(t[i]) {
		i++
	}
	if i == 0 {
		return nil, false
	}
	for j := i; j < len(t); j++ {
		if t[j] != '=' {
			return nil, false
		}
	}
	return t, true
}

func isToken68(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/'
}

// AuthConfig configures an Auth.
type AuthConfig struct {
	// File is the auth file. Required.
	File string
	// Poll is how often the file is checked for changes. The default is 1s.
	Poll time.Duration
	// Logger receives reloads and files that do not parse. nil means
	// slog.Default().
	Logger *slog.Logger
	// ClientIdentity, when set, names the holder of a request's client
	// certificate (NodeTLS.ClientIdentity: only one of the client CA
	// counts); nil takes any certificate the TLS config verified.
	ClientIdentity func(cs *tls.ConnectionState) (string, bool)
}

// Auth holds the credentials of an auth file and reloads them when the
// file changes. It is safe for concurrent use. Its zero value is not
// usable: call NewAuth.
type Auth struct {
	cfg AuthConfig
	set atomic.Pointer[authSet]

	reloadMu sync.Mutex // serialises Reload
	stop     chan struct{}
	done     chan struct{}
	once     sync.Once
}

// NewAuth loads the auth file of cfg and starts the goroutine that reloads
// it when it changes (stop it with Close). A file that does not parse is
// an error here; later, a change that does not parse is logged and the
// credentials in force are kept.
func NewAuth(cfg AuthConfig) (*Auth, error) {
	if cfg.Poll <= 0 {
		cfg.Poll = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	a := &Auth{cfg: cfg, stop: make(chan struct{}), done: make(chan struct{})}
	set, err := a.load()
	if err != nil {
		return nil, err
	}
	a.set.Store(set)
	go a.watch()
	return a, nil
}

// NewStaticAuth returns an Auth of the given file content that never
// reloads, for tests and embedders.
func NewStaticAuth(content []byte) (*Auth, error) {
	set, err := parseAuthFile(content)
	if err != nil {
		return nil, err
	}
	a := &Auth{cfg: AuthConfig{Logger: slog.Default()}, stop: make(chan struct{}), done: make(chan struct{})}
	close(a.done)
	a.set.Store(set)
	return a, nil
}

func (a *Auth) load() (*authSet, error) {
	f, err := os.Open(a.cfg.File)
	if err != nil {
		return nil, fmt.Errorf("auth file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxAuthFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("auth file %s: %w", a.cfg.File, err)
	}
	if len(b) > maxAuthFileSize {
		return nil, fmt.Errorf("auth file %s: larger than %d bytes", a.cfg.File, maxAuthFileSize)
	}
	set, err := parseAuthFile(b)
	if err != nil {
		return nil, fmt.Errorf("auth file %s: %w", a.cfg.File, err)
	}
	return set, nil
}

// Reload reads the file again now. If it does not parse, the credentials
// in force stay, and the error says why.
func (a *Auth) Reload() error {
	if a.cfg.File == "" {
		return nil
	}
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	set, err := a.load()
	if err != nil {
		return err
	}
	old := a.set.Load()
	if old != nil && old.sum == set.sum {
		return nil
	}
	a.set.Store(set)
	a.cfg.Logger.Info("auth file reloaded", "file", a.cfg.File, "credentials", len(set.grants))
	return nil
}

// watch reads the file every Poll and reloads it when its hash changed:
// reading a file of a few lines costs less than keeping an inotify watch
// portable, and unlike an mtime it sees an edit within the clock's
// granularity, or a file put back with its old time.
func (a *Auth) watch() {
	defer close(a.done)
	t := time.NewTicker(a.cfg.Poll)
	defer t.Stop()
	var lastErr string
	for {
		select {
		case <-a.stop:
			return
		case <-t.C:
		}
		if err := a.Reload(); err != nil {
			// Log once per distinct failure, not once a second.
			if err.Error() != lastErr {
				a.cfg.Logger.Error("auth file not reloaded; keeping the credentials in force", "err", err)
			}
			lastErr = err.Error()
			continue
		}
		lastErr = ""
	}
}

// Close stops the reload goroutine and waits for it.
func (a *Auth) Close() {
	a.once.Do(func() { close(a.stop) })
	<-a.done
}

// identify returns the credential of a request: its bearer token's if it
// has an Authorization header (ok false if that header is not a bearer
// token the file knows), else its verified client certificate's, else nil
// (anonymous, ok true).
func (a *Auth) identify(ctx *fasthttp.RequestCtx) (id *identity, ok bool) {
	set := a.set.Load()
	if h := ctx.Request.Header.Peek(fasthttp.HeaderAuthorization); h != nil {
		tok, ok := ParseBearer(h)
		if !ok {
			return nil, false
		}
		id = set.match(tok, "")
		return id, id != nil
	}
	cs := ctx.TLSConnectionState()
	if cs == nil || len(cs.PeerCertificates) == 0 {
		return nil, true
	}
	if a.cfg.ClientIdentity != nil {
		// A certificate of the client CA (a node's certificate of the
		// cluster CA, on a shared port, names no client).
		if cn, ok := a.cfg.ClientIdentity(cs); ok {
			return set.match(nil, cn), true
		}
		return nil, true
	}
	if len(cs.VerifiedChains) > 0 {
		// Only a chain the TLS config verified counts; a presented but
		// unverified certificate names anyone.
		return set.match(nil, cs.PeerCertificates[0].Subject.CommonName), true
	}
	return nil, true
}

// pprofCmdline serves /debug/pprof/cmdline as pprof does (the arguments,
// NUL-separated), with the value of every flag that names a secret or a
// token replaced: a profile is no way to read the cluster secret.
func (s *Server) pprofCmdline(ctx *fasthttp.RequestCtx) {
	args := s.cfg.Cmdline
	if args == nil {
		args = os.Args
	}
	ctx.Response.Header.Set("X-Content-Type-Options", "nosniff")
	ctx.SetContentTypeBytes(ctText)
	ctx.SetBodyString(strings.Join(ScrubCmdline(args), "\x00"))
}

// ScrubCmdline returns args with "REDACTED" for the value of each flag
// whose name holds "secret" or "token" (--cluster-secret V,
// --cluster-secret=V, -token V), but not of those that name a file
// (--cluster-secret-file F): a path is no secret.
func ScrubCmdline(args []string) []string {
	out := make([]string, len(args))
	copy(out, args)
	for i := 1; i < len(out); i++ {
		a := out[i]
		if a == "--" {
			break
		}
		if !strings.HasPrefix(a, "-") {
			continue
		}
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		n := strings.ToLower(name)
		if !strings.Contains(n, "secret") && !strings.Contains(n, "token") || strings.HasSuffix(n, "-file") || strings.HasSuffix(n, "_file") {
			continue
		}
		if hasValue {
			out[i] = a[:strings.IndexByte(a, '=')+1] + "REDACTED"
		} else if i+1 < len(out) {
			out[i+1] = "REDACTED"
			i++
		}
	}
	return out
}

// admitBatch decides, when Config.Auth is set, whether the request's
// credential may run every item of a batch, answering 401 or 403 if not:
// each item needs its own role (read for a get, readwrite for a put or
// delete) on its own key, inside the prefix of a grant that has that
// role. admit let the request in with the read role before the body was
// read; nothing of the batch is applied unless every item passes.
func (s *Server) admitBatch(ctx *fasthttp.RequestCtx, ops []kv.BatchOp) bool {
	a := s.cfg.Auth
	if a == nil {
		return true
	}
	id, ok := a.identify(ctx)
	if !ok || id == nil {
		// The auth file was reloaded since admit, without this credential.
		ctx.Response.Header.SetCanonical(hdrWWWAuth, wwwAuthInvalid)
		writeError(ctx, fasthttp.StatusUnauthorized, "invalid credential: want Authorization: Bearer TOKEN with a token of the auth file")
		return false
	}
	for i := range ops {
		need := RoleReadWrite
		if ops[i].Kind == kv.BatchGet {
			need = RoleRead
		}
		if !id.permits(need, ops[i].Key, true) {
			msg := "forbidden: item " + strconv.Itoa(i) + " (a " + ops[i].Kind.String() + ") needs the " + need.String() + " role"
			if id.restricted {
				msg += " on a key inside the credential's prefix"
			}
			writeError(ctx, fasthttp.StatusForbidden, msg)
			return false
		}
	}
	return true
}
