package keyring

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, body string
		want       []string
		err        string
	}{
		{name: "one", body: "s1\n", want: []string{"s1"}},
		{name: "rotation", body: "# the new secret first\nnew \n\n  old\n", want: []string{"new", "old"}},
		{name: "no newline", body: "s1", want: []string{"s1"}},
		{name: "crlf", body: "a\r\nb\r\n", want: []string{"a", "b"}},
		{name: "empty", body: "", err: "is empty"},
		{name: "comments only", body: "# x\n\n", err: "is empty"},
		{name: "too big", body: strings.Repeat("x", MaxFileSize+1), err: "more than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, tc.name)
			if err := os.WriteFile(p, []byte(tc.body), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := ReadFile(p)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), p) {
					t.Fatalf("got %q, %v; want an error naming the file, containing %q", got, err, tc.err)
				}
				return
			}
			if err != nil || len(got) != len(tc.want) {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
			for i := range got {
				if string(got[i]) != tc.want[i] {
					t.Fatalf("got %q, want %q", got, tc.want)
				}
			}
		})
	}
	if _, err := ReadFile(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a missing file: %v", err)
	}
}

// TestWatch: a change to the file reaches the keyring (and
// its OnChange subscribers, gossip among them); a change that leaves no
// secret is refused and the keys stay; stop ends the watcher.
func TestWatch(t *testing.T) {
	p := filepath.Join(t.TempDir(), "secrets")
	if err := os.WriteFile(p, []byte("old\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	secs, err := ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	s := New("c", secs...)
	key := func(sec string) []byte { return Derive([]byte(sec), "c").Gossip }
	primary := func() []byte { k, _ := s.Primary(); return k.Gossip }
	if !bytes.Equal(primary(), key("old")) {
		t.Fatal("the file's secret is not the primary")
	}
	changes := make(chan struct{}, 10)
	s.OnChange(func() { changes <- struct{}{} })
	stop := Watch(p, s, 5*time.Millisecond, slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer stop()
	write := func(body string) {
		// A size change is seen even where mtimes are coarse.
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("new-secret\nold\n")
	select {
	case <-changes:
	case <-time.After(30 * time.Second):
		t.Fatal("the file's change never reached the keyring")
	}
	if all := s.All(); len(all) != 2 || !bytes.Equal(all[0].Gossip, key("new-secret")) || !bytes.Equal(all[1].Gossip, key("old")) {
		t.Fatalf("keyring after the change: %d keys", len(all))
	}
	write("# nothing left\n")
	write("# nothing left at all, still\n")
	// The refused content is never installed; the next good one is.
	write("newest-secret-x\n")
	select {
	case <-changes:
	case <-time.After(30 * time.Second):
		t.Fatal("the second change never reached the keyring")
	}
	if all := s.All(); len(all) != 1 || !bytes.Equal(all[0].Gossip, key("newest-secret-x")) {
		t.Fatalf("keyring after the second change: %d keys", len(all))
	}
}
