package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Sentinels matched by a *StatusError's status (errors.Is), or by a
// *NodeError (ErrUnreachable).
var (
	// ErrNotFound: the key is absent (404), or the member named is not
	// in the ring.
	ErrNotFound = errors.New("ringkv: not found")
	// ErrBadRequest: the node refused the request as malformed (400): a
	// key that is empty or too long, a bad consistency or ttl.
	ErrBadRequest = errors.New("ringkv: bad request")
	// ErrUnauthorized: a node with --auth-file wants a token (401).
	ErrUnauthorized = errors.New("ringkv: unauthorized")
	// ErrForbidden: the token's role or key prefix does not allow the
	// request (403).
	ErrForbidden = errors.New("ringkv: forbidden")
	// ErrConflict: the request conflicts with the node's state (409): a
	// backup already running, removing a member that is alive.
	ErrConflict = errors.New("ringkv: conflict")
	// ErrTooLarge: the value is larger than the node's --max-value-size
	// (413); nothing was written.
	ErrTooLarge = errors.New("ringkv: value too large")
	// ErrTooManyRequests: the node is at a limit (429), e.g. its
	// concurrent scans; retry later.
	ErrTooManyRequests = errors.New("ringkv: too many requests")
	// ErrNotImplemented: the node lacks the endpoint (501): clustering
	// or backups off.
	ErrNotImplemented = errors.New("ringkv: not implemented by the node")
	// ErrUnavailable: too few replicas answered for the consistency asked
	// (503), or the node is shutting down; a retry may succeed.
	ErrUnavailable = errors.New("ringkv: unavailable")
	// ErrTimeout: the coordinator gave up waiting for replicas (504); a
	// write may have been applied by some of them.
	ErrTimeout = errors.New("ringkv: timed out waiting for replicas")
	// ErrInsufficientStorage: the node's disk is below its free-space
	// floor and it refuses writes (507).
	ErrInsufficientStorage = errors.New("ringkv: insufficient storage")
	// ErrUnreachable: no answer came from the node: it could not be
	// dialled, or the connection failed before an answer.
	ErrUnreachable = errors.New("ringkv: node unreachable")
	// ErrConditionFailed: a conditional write was not applied, as the
	// key's current record did not meet its condition (412); the error is
	// a *ConditionError, which says what the record is.
	ErrConditionFailed = errors.New("ringkv: condition failed")
	// ErrOutcomeUnknown: a conditional write's round was cut short after
	// its record may have been accepted (503): it may or may not be
	// applied. Read the key with GetVersioned to know. It also matches
	// ErrUnavailable.
	ErrOutcomeUnknown = errors.New("ringkv: outcome unknown")
)

// ConditionError is a node's 412 to a conditional write: the key's
// current record did not meet the condition. Exists is false when the
// key is absent; Current is then "".
type ConditionError struct {
	StatusError
	Exists  bool
	Current Version
}

// Is matches ErrConditionFailed.
func (e *ConditionError) Is(target error) bool { return target == ErrConditionFailed }

// sentinelOf returns the sentinel an HTTP status matches, or nil.
func sentinelOf(code int) error {
	switch code {
	case http.StatusNotFound:
		return ErrNotFound
	case http.StatusBadRequest:
		return ErrBadRequest
	case http.StatusUnauthorized:
		return ErrUnauthorized
	case http.StatusForbidden:
		return ErrForbidden
	case http.StatusConflict:
		return ErrConflict
	case http.StatusRequestEntityTooLarge:
		return ErrTooLarge
	case http.StatusTooManyRequests:
		return ErrTooManyRequests
	case http.StatusNotImplemented:
		return ErrNotImplemented
	case http.StatusServiceUnavailable:
		return ErrUnavailable
	case http.StatusGatewayTimeout:
		return ErrTimeout
	case http.StatusInsufficientStorage:
		return ErrInsufficientStorage
	}
	return nil
}

// StatusError is an error answer of a node: its status and the message of
// its JSON body ({"error": ...}).
type StatusError struct {
	Code    int    // HTTP status code
	Status  string // e.g. "503 Service Unavailable"
	Message string // the body's error message, or its text
	Addr    string // the node that answered, as given to the client
}

func (e *StatusError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = "(no message)"
	}
	return e.Status + ": " + msg
}

// Is matches the sentinel of e's status, and ErrOutcomeUnknown for a
// conditional write whose outcome the node could not tell.
func (e *StatusError) Is(target error) bool {
	if target == ErrOutcomeUnknown {
		return e.Code == http.StatusServiceUnavailable && strings.Contains(e.Message, "outcome unknown")
	}
	s := sentinelOf(e.Code)
	return s != nil && s == target
}

// NodeError is a failure to get any answer from the node at Addr.
type NodeError struct {
	Addr string
	Err  error // the transport's error
}

func (e *NodeError) Error() string { return "cannot reach " + e.Addr + ": " + e.Err.Error() }

func (e *NodeError) Unwrap() error { return e.Err }

// Is matches ErrUnreachable.
func (e *NodeError) Is(target error) bool { return target == ErrUnreachable }

// failover reports whether err means that the node could not answer, so
// another may: it could not be reached, or it answered 503 (too few
// replicas from where it stands, or shutting down) or 429 (at a limit). A
// 504 is not: the replicas were asked and a retry elsewhere would wait as
// long again.
func failover(err error) bool {
	var se *StatusError
	if errors.As(err, &se) {
		return se.Code == http.StatusServiceUnavailable || se.Code == http.StatusTooManyRequests
	}
	var ne *NodeError
	return errors.As(err, &ne)
}

// failoverConditional is failover for a conditional write, which must
// never be applied twice: only answers that say nothing was applied (429,
// and a 503 other than "outcome unknown") send it to another node; a
// connection that failed may have carried it, so it does not.
func failoverConditional(err error) bool {
	var se *StatusError
	if !errors.As(err, &se) || errors.Is(err, ErrOutcomeUnknown) {
		return false
	}
	return se.Code == http.StatusServiceUnavailable || se.Code == http.StatusTooManyRequests
}

// errorMessage extracts the message of a JSON error body, or the body's
// text when it is not one.
func errorMessage(body []byte) string {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		return e.Error
	}
	return strings.TrimSpace(string(body))
}

// statusError builds the error of a non-2xx answer.
func statusError(addr string, code int, status string, body []byte) *StatusError {
	if status == "" {
		status = fmt.Sprintf("%d %s", code, http.StatusText(code))
	}
	return &StatusError{Code: code, Status: status, Message: errorMessage(body), Addr: addr}
}

// conditionError parses a 412's body: {"error":...,"exists":B,"version":V}.
func conditionError(addr, status string, body []byte) *ConditionError {
	e := &ConditionError{StatusError: *statusError(addr, http.StatusPreconditionFailed, status, body)}
	var b struct {
		Exists  bool   `json:"exists"`
		Version string `json:"version"`
	}
	if json.Unmarshal(body, &b) == nil {
		e.Exists, e.Current = b.Exists, Version(b.Version)
	}
	return e
}
