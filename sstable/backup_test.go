package sstable

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// backupOf fills a store on disk, keeps writing after the backup, and
// returns the archive, the keys and the store's state at backup time.
func backupOf(t *testing.T) ([]byte, [][]byte, state) {
	t.Helper()
	dir := t.TempDir()
	e := openEngine(t, vfs.Default, filepath.Join(dir, "data"))
	defer e.Close()
	donor(t, e, 3000, 1000)
	var keys [][]byte
	for i := 0; i < 3000; i++ {
		keys = append(keys, []byte(fmt.Sprint("key-", i)))
	}
	want := read(t, e, keys)
	var buf bytes.Buffer
	c, err := TakeCheckpoint(e, filepath.Join(dir, "data.backup-1"))
	must(t, err)
	m, err := c.WriteTo(context.Background(), &buf)
	must(t, err)
	must(t, c.Close())
	if len(m.Files) == 0 || m.Bytes == 0 {
		t.Fatalf("manifest: %+v", m)
	}
	// The scratch checkpoint is gone; writes after the backup are not in it.
	if _, err := os.Stat(filepath.Join(dir, "data.backup-1")); !os.IsNotExist(err) {
		t.Errorf("scratch checkpoint left behind: %v", err)
	}
	must(t, e.Write([]byte("key-1"), rec(5000, "after the backup"), true))
	return buf.Bytes(), keys, want
}

// TestBackupRestore: a backup extracted and restored opens as a store
// holding exactly what the node held when the backup was taken, every
// acknowledged (unflushed, memtable-only) write included.
func TestBackupRestore(t *testing.T) {
	archive, keys, want := backupOf(t)
	dir := t.TempDir()
	m, err := Extract(bytes.NewReader(archive), filepath.Join(dir, "b"))
	must(t, err)
	data := filepath.Join(dir, "restored")
	must(t, os.Mkdir(data, 0o755)) // an empty directory is fine
	m2, err := Restore(filepath.Join(dir, "b"), data)
	must(t, err)
	if m2.Bytes != m.Bytes {
		t.Errorf("restore manifest %d bytes, extract %d", m2.Bytes, m.Bytes)
	}
	e := openEngine(t, vfs.Default, data)
	defer e.Close()
	got := read(t, e, keys)
	if len(got) != len(want) {
		t.Fatalf("restored %d keys, want %d", len(got), len(want))
	}
	for k, v := range want {
		if !bytes.Equal(got[k], v) {
			t.Fatalf("key %s: restored %x, want %x", k, got[k], v)
		}
	}
	// A second restore into the now-used directory is refused.
	if _, err := Restore(filepath.Join(dir, "b"), data); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("restore into a used data dir: %v", err)
	}
	// A regular file where the data dir should go is refused, and kept.
	file := filepath.Join(dir, "notes.txt")
	must(t, os.WriteFile(file, []byte("mine"), 0o644))
	if _, err := Restore(filepath.Join(dir, "b"), file); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("restore onto a regular file: %v", err)
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "mine" {
		t.Errorf("the file in the way is %q, %v after the refused restore", b, err)
	}
}

// tarOf builds an archive from name/body pairs.
func tarOf(t *testing.T, entries ...string) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for i := 0; i+1 < len(entries); i += 2 {
		must(t, tw.WriteHeader(&tar.Header{Name: entries[i], Mode: 0o644, Size: int64(len(entries[i+1])), Typeflag: tar.TypeReg}))
		_, err := tw.Write([]byte(entries[i+1]))
		must(t, err)
	}
	must(t, tw.Close())
	return buf.Bytes()
}

// TestExtractRefuses: a cut-off, tampered or hostile archive is refused
// with an error that says why, and leaves no directory behind.
func TestExtractRefuses(t *testing.T) {
	archive, _, _ := backupOf(t)
	flipped := bytes.Clone(archive)
	flipped[1024] ^= 0xff // inside the first file's body
	manifest := `{"format":1,"files":[{"name":"a","size":1,"xxh3":"0"}]}`
	for _, tc := range []struct {
		name string
		in   []byte
		want string
	}{
		{"cut off", archive[:len(archive)/2], ""},
		{"no manifest", tarOf(t, "a", "x"), "cut off"},
		{"tampered", flipped, "manifest says"},
		{"path escape", tarOf(t, "../evil", "x"), "unexpected entry"},
		{"subdirectory", tarOf(t, "d/f", "x"), "unexpected entry"},
		{"extra file", tarOf(t, "a", "x", "b", "y", ManifestName, manifest), "2 files"},
		// Two files, the manifest lists one of them twice: b is unchecked.
		{"name listed twice", tarOf(t, "a", "x", "b", "y", ManifestName,
			`{"format":1,"files":[{"name":"a","size":1,"xxh3":"0"},{"name":"a","size":1,"xxh3":"0"}]}`), "twice"},
		{"entry after manifest", tarOf(t, "a", "x", ManifestName, manifest, "b", "y"), "after the manifest"},
		{"not json", tarOf(t, "a", "x", ManifestName, "{"), "manifest"},
		{"not tar", []byte("hello, this is not an archive at all"), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "b")
			_, err := Extract(bytes.NewReader(tc.in), dir)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
			for _, p := range []string{dir, dir + ".partial"} {
				if _, err := os.Stat(p); !os.IsNotExist(err) {
					t.Errorf("%s left behind", p)
				}
			}
		})
	}
	// An existing target is never overwritten.
	dir := t.TempDir()
	if _, err := Extract(bytes.NewReader(archive), dir); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Errorf("extract over an existing dir: %v", err)
	}
}

// TestRestoreRefuses: restore checks the backup directory again, so a file
// damaged or lost after extraction is caught before a node starts on it,
// and nothing is left behind; a data dir that is a file or a symbolic link
// is refused.
func TestRestoreRefuses(t *testing.T) {
	archive, _, _ := backupOf(t)
	dir := t.TempDir()
	b := filepath.Join(dir, "b")
	m, err := Extract(bytes.NewReader(archive), b)
	must(t, err)
	if _, err := Restore(dir, filepath.Join(dir, "x")); err == nil || !strings.Contains(err.Error(), "not a ringkv backup") {
		t.Errorf("restore from a non-backup: %v", err)
	}
	data := filepath.Join(dir, "data")
	// A data dir that is a file, or a link to an empty directory.
	must(t, os.WriteFile(data, nil, 0o644))
	if _, err := Restore(b, data); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("restore onto a file: %v", err)
	}
	must(t, os.Remove(data))
	must(t, os.Mkdir(filepath.Join(dir, "empty"), 0o755))
	must(t, os.Symlink(filepath.Join(dir, "empty"), data))
	if _, err := Restore(b, data); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("restore onto a symlink: %v", err)
	}
	must(t, os.Remove(data))
	// The last file damaged (the others are copied first), then missing:
	// refused, with nothing left behind.
	last := filepath.Join(b, m.Files[len(m.Files)-1].Name)
	for _, tc := range []struct {
		damage func()
		want   string
	}{
		{func() { must(t, os.WriteFile(last, []byte("damaged"), 0o644)) }, "manifest says"},
		{func() { must(t, os.Remove(last)) }, "lacks"},
	} {
		tc.damage()
		if _, err := Restore(b, data); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("restore of a damaged backup: %v, want %q", err, tc.want)
		}
		for _, left := range []string{data, data + ".restoring"} {
			if _, err := os.Stat(left); !os.IsNotExist(err) {
				t.Errorf("a failed restore left %s", left)
			}
		}
	}
}
