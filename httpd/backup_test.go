package httpd

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync/atomic"
	"testing"
)

// TestBackupEndpoint: GET /v1/admin/backup streams what Config.Backup
// returns (more than one deadline chunk of it, whole), a failure to take
// the copy is a 500 with a JSON body, other methods 405, and a node
// without Backup 501.
func TestBackupEndpoint(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789abcdef"), 3*backupChunk/16+5)
	var streamed atomic.Int32
	fail := false
	ts := newTestServer(t, Config{Backup: func(ctx context.Context) (func(io.Writer) error, error) {
		if fail {
			return nil, errors.New("disk full")
		}
		return func(w io.Writer) error {
			defer streamed.Add(1)
			for b := body; len(b) > 0; b = b[min(len(b), 100_000):] {
				if _, err := w.Write(b[:min(len(b), 100_000)]); err != nil {
					return err
				}
			}
			return nil
		}, nil
	}})
	resp := ts.roundTrip(t, rawRequest("GET", "/v1/admin/backup", nil), false)
	if resp.StatusCode() != 200 || string(resp.Header.ContentType()) != "application/x-tar" || !bytes.Equal(resp.Body(), body) {
		t.Fatalf("backup: %d %q, %d bytes of %d", resp.StatusCode(), resp.Header.ContentType(), len(resp.Body()), len(body))
	}
	if streamed.Load() != 1 {
		t.Errorf("streamed %d times", streamed.Load())
	}
	fail = true
	resp = ts.roundTrip(t, rawRequest("GET", "/v1/admin/backup", nil), false)
	if resp.StatusCode() != 500 || !bytes.Contains(resp.Body(), []byte("disk full")) {
		t.Errorf("failed backup: %d %s", resp.StatusCode(), resp.Body())
	}
	checkJSONError(t, resp.Header.ContentType(), resp.Body())
	resp = ts.roundTrip(t, rawRequest("POST", "/v1/admin/backup", nil), false)
	if resp.StatusCode() != 405 {
		t.Errorf("POST: %d", resp.StatusCode())
	}
	plain := newTestServer(t, Config{})
	resp = plain.roundTrip(t, rawRequest("GET", "/v1/admin/backup", nil), false)
	if resp.StatusCode() != 501 {
		t.Errorf("without Backup: %d %s", resp.StatusCode(), resp.Body())
	}
	checkJSONError(t, resp.Header.ContentType(), resp.Body())
}
