package httpd

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/ringkv/ringkv/peer/peertest/wait"
)

// TestBackupEndpoint: GET /v1/admin/backup streams what Config.Backup
// returns (3MiB of it, whole), a failure to take
// the copy is a 500 with a JSON body, other methods 405, and a node
// without Backup 501.
func TestBackupEndpoint(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789abcdef"), 3<<20/16+5)
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

// TestBackupOneAtATime: while a backup streams, another is refused with a
// 409 and a JSON body (each would hold a checkpoint of the whole store);
// the slot is given back when a backup is done, when its copy could not be
// taken, and when its client goes away mid-stream.
func TestBackupOneAtATime(t *testing.T) {
	started, release := make(chan struct{}, 1), make(chan struct{})
	var fail, flood atomic.Bool
	streamErr := make(chan error, 1)
	ts := newTestServer(t, Config{Backup: func(ctx context.Context) (func(io.Writer) error, error) {
		if fail.Load() {
			return nil, errors.New("disk full")
		}
		return func(w io.Writer) error {
			started <- struct{}{}
			<-release
			if flood.Load() {
				// Write until the client's going away fails the stream
				// (bounded: 256MiB).
				chunk := make([]byte, 1<<20)
				var err error
				for i := 0; i < 256 && err == nil; i++ {
					_, err = w.Write(chunk)
				}
				streamErr <- err
				return err
			}
			_, err := w.Write([]byte("archive"))
			return err
		}, nil
	}})
	c, err := ts.ln.Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	first := make(chan error, 1)
	go func() {
		resp := &fasthttp.Response{}
		_, err := c.Write(rawRequest("GET", "/v1/admin/backup", nil))
		if err == nil {
			err = resp.Read(bufio.NewReader(c))
		}
		if err == nil && (resp.StatusCode() != 200 || string(resp.Body()) != "archive") {
			err = fmt.Errorf("first backup: %d %q", resp.StatusCode(), resp.Body())
		}
		first <- err
	}()
	<-started
	resp := ts.roundTrip(t, rawRequest("GET", "/v1/admin/backup", nil), false)
	if resp.StatusCode() != 409 || !bytes.Contains(resp.Body(), []byte("already being taken")) {
		t.Fatalf("second backup during the first: %d %s", resp.StatusCode(), resp.Body())
	}
	checkJSONError(t, resp.Header.ContentType(), resp.Body())
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if resp := ts.roundTrip(t, rawRequest("GET", "/v1/admin/backup", nil), false); resp.StatusCode() != 200 {
		t.Fatalf("backup after the first finished: %d %s", resp.StatusCode(), resp.Body())
	}
	<-started

	fail.Store(true)
	if resp := ts.roundTrip(t, rawRequest("GET", "/v1/admin/backup", nil), false); resp.StatusCode() != 500 {
		t.Fatalf("backup whose copy fails: %d %s", resp.StatusCode(), resp.Body())
	}
	fail.Store(false)
	if resp := ts.roundTrip(t, rawRequest("GET", "/v1/admin/backup", nil), false); resp.StatusCode() != 200 {
		t.Fatalf("backup after a failed one: %d %s", resp.StatusCode(), resp.Body())
	}
	<-started

	// A client that goes away while its backup streams: the stream fails.
	release = make(chan struct{})
	flood.Store(true)
	c2, err := ts.ln.Dial()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c2.Write(rawRequest("GET", "/v1/admin/backup", nil)); err != nil {
		t.Fatal(err)
	}
	<-started
	c2.Close()
	close(release)
	select {
	case err := <-streamErr:
		if err == nil {
			t.Fatal("256MiB streamed to a client that had gone away")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the stream to a client that went away did not end")
	}
	flood.Store(false)
	// The abandoned backup may still hold the slot for a moment (409);
	// anything else but 200 is wrong at once.
	wait.For(t, time.Minute, func() bool {
		resp := ts.roundTrip(t, rawRequest("GET", "/v1/admin/backup", nil), false)
		if c := resp.StatusCode(); c != 200 && c != 409 {
			t.Fatalf("backup after a client went away mid-stream: %d %s", c, resp.Body())
		}
		return resp.StatusCode() == 200
	}, "a backup to succeed after a client went away mid-stream (409 until the abandoned one ends)")
}
