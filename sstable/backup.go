package sstable

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/ringkv/ringkv/engine"
	"github.com/zeebo/xxh3"
)

// ManifestName is the last entry of a backup archive and the file that
// marks an extracted backup directory as complete.
const ManifestName = "ringkv-backup.json"

// Manifest lists the files of one node's backup with their sizes and xxh3
// hashes, so that a restore can tell a whole backup from a cut-off one.
type Manifest struct {
	Format  int            `json:"format"` // 1
	TakenAt time.Time      `json:"taken_at"`
	Files   []ManifestFile `json:"files"`
	Bytes   int64          `json:"bytes"`
}

// ManifestFile is one file of a backup.
type ManifestFile struct {
	Name string `json:"name"`
	Size int64  `json:"size"`
	XXH3 string `json:"xxh3"` // hex
}

// maxManifest bounds the manifest a restore will read.
const maxManifest = 16 << 20

// Checkpoint is a consistent copy of a whole store (data, hints and
// metadata) waiting to be streamed as a backup: a Pebble checkpoint, taken
// with the WAL flushed, so every write acknowledged before it is in it.
type Checkpoint struct {
	fs    vfs.FS
	dir   string
	taken time.Time
}

// TakeCheckpoint checkpoints e into scratch, a path that must not exist,
// on the same filesystem as the store so that tables are hard links.
// Close removes it.
func TakeCheckpoint(e *engine.Engine, scratch string) (*Checkpoint, error) {
	taken := time.Now().UTC()
	if err := e.Checkpoint(scratch); err != nil {
		return nil, err
	}
	return &Checkpoint{fs: e.FS(), dir: scratch, taken: taken}, nil
}

// Close removes the checkpoint's files.
func (c *Checkpoint) Close() error { return c.fs.RemoveAll(c.dir) }

// WriteTo writes the checkpoint to w as a tar archive of its files whose
// last entry is the manifest (ManifestName). A reader that gets no
// manifest knows the stream was cut off.
func (c *Checkpoint) WriteTo(ctx context.Context, w io.Writer) (Manifest, error) {
	m := Manifest{Format: 1, TakenAt: c.taken}
	fs := c.fs
	names, err := fs.List(c.dir)
	if err != nil {
		return m, fmt.Errorf("cannot list checkpoint: %w", err)
	}
	sort.Strings(names)
	tw := tar.NewWriter(w)
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return m, err
		}
		path := fs.PathJoin(c.dir, name)
		st, err := fs.Stat(path)
		if err != nil {
			return m, fmt.Errorf("checkpoint file %s: %w", name, err)
		}
		if st.IsDir() {
			continue // Pebble's checkpoints are flat
		}
		f, err := fs.Open(path)
		if err != nil {
			return m, fmt.Errorf("checkpoint file %s: %w", name, err)
		}
		var mf ManifestFile
		err = tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: st.Size(), ModTime: m.TakenAt, Typeflag: tar.TypeReg})
		if err == nil {
			mf, err = hashCopy(tw, f)
			if err == nil && mf.Size != st.Size() {
				err = fmt.Errorf("read %d bytes, want %d", mf.Size, st.Size())
			}
		}
		f.Close()
		if err != nil {
			return m, fmt.Errorf("backup file %s: %w", name, err)
		}
		mf.Name = name
		m.Files = append(m.Files, mf)
		m.Bytes += st.Size()
	}
	body, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return m, err
	}
	if err := tw.WriteHeader(&tar.Header{Name: ManifestName, Mode: 0o644, Size: int64(len(body)), ModTime: m.TakenAt, Typeflag: tar.TypeReg}); err != nil {
		return m, err
	}
	if _, err := tw.Write(body); err != nil {
		return m, err
	}
	return m, tw.Close()
}

// validName reports whether a backup entry name is a plain file name:
// nothing that could land outside the directory being extracted into.
func validName(name string) bool {
	return name != "" && name != "." && name != ".." && !strings.ContainsAny(name, `/\`) && !strings.ContainsRune(name, 0)
}

// Extract reads a backup archive from r into dir, which must not exist.
// The files go to dir+".partial" first and are checked against the
// manifest (every file listed, each size and hash equal, nothing extra);
// only a whole, verified backup is renamed to dir, so a cut-off download
// never looks like a backup.
func Extract(r io.Reader, dir string) (Manifest, error) {
	var m Manifest
	if _, err := os.Stat(dir); err == nil {
		return m, fmt.Errorf("%s already exists", dir)
	}
	tmp := dir + ".partial"
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(tmp)
		}
	}()
	if err := freshDir(tmp); err != nil {
		return m, err
	}
	got := map[string]ManifestFile{}
	var manifest []byte
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return m, fmt.Errorf("backup archive: %w", err)
		}
		if hdr.Typeflag != tar.TypeReg || !validName(hdr.Name) {
			return m, fmt.Errorf("backup archive: unexpected entry %q", hdr.Name)
		}
		if manifest != nil {
			return m, fmt.Errorf("backup archive: entry %q after the manifest", hdr.Name)
		}
		if hdr.Name == ManifestName {
			if hdr.Size > maxManifest {
				return m, fmt.Errorf("backup archive: manifest of %d bytes", hdr.Size)
			}
			if manifest, err = io.ReadAll(io.LimitReader(tr, maxManifest)); err != nil {
				return m, fmt.Errorf("backup archive: manifest: %w", err)
			}
			continue
		}
		if _, dup := got[hdr.Name]; dup {
			return m, fmt.Errorf("backup archive: %q twice", hdr.Name)
		}
		mf, err := copyToFile(filepath.Join(tmp, hdr.Name), tr)
		if err != nil {
			return m, fmt.Errorf("backup file %s: %w", hdr.Name, err)
		}
		got[hdr.Name] = mf
	}
	if manifest == nil {
		return m, errors.New("backup archive ends before its manifest: the backup was cut off")
	}
	if err := json.Unmarshal(manifest, &m); err != nil {
		return m, fmt.Errorf("backup manifest: %w", err)
	}
	if err := m.check(got); err != nil {
		return m, err
	}
	if err := os.WriteFile(filepath.Join(tmp, ManifestName), manifest, 0o644); err != nil {
		return m, err
	}
	if err := syncDir(vfs.Default, tmp); err != nil {
		return m, err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return m, err
	}
	ok = true
	return m, syncDir(vfs.Default, filepath.Dir(dir))
}

// check compares the files found with the manifest's list.
func (m *Manifest) check(got map[string]ManifestFile) error {
	if err := m.validate(); err != nil {
		return err
	}
	if len(got) != len(m.Files) {
		return fmt.Errorf("backup has %d files, its manifest lists %d", len(got), len(m.Files))
	}
	for _, want := range m.Files {
		f, ok := got[want.Name]
		if !ok {
			return fmt.Errorf("backup lacks %s, listed in its manifest", want.Name)
		}
		if err := want.match(f); err != nil {
			return err
		}
	}
	return nil
}

// match reports whether got (a file's size and hash) is what f lists.
func (f ManifestFile) match(got ManifestFile) error {
	if got.Size != f.Size || got.XXH3 != f.XXH3 {
		return fmt.Errorf("backup file %s: %d bytes, hash %s; the manifest says %d bytes, hash %s", f.Name, got.Size, got.XXH3, f.Size, f.XXH3)
	}
	return nil
}

// validate checks the manifest on its own: its format, and each file
// name valid and listed once (else a name listed twice would let an
// unlisted file through check).
func (m *Manifest) validate() error {
	if m.Format != 1 {
		return fmt.Errorf("backup manifest: format %d, want 1", m.Format)
	}
	listed := make(map[string]bool, len(m.Files))
	for _, f := range m.Files {
		switch {
		case !validName(f.Name):
			return fmt.Errorf("backup manifest: bad file name %q", f.Name)
		case listed[f.Name]:
			return fmt.Errorf("backup manifest lists %s twice", f.Name)
		}
		listed[f.Name] = true
	}
	return nil
}

// copyToFile copies r to a new file at path, fsyncs it, and returns its
// size and hash.
func copyToFile(path string, r io.Reader) (ManifestFile, error) {
	var mf ManifestFile
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return mf, err
	}
	mf, err = hashCopy(f, r)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return mf, err
}

// hashCopy copies r to w and returns the size and xxh3 of what it copied.
func hashCopy(w io.Writer, r io.Reader) (ManifestFile, error) {
	h := xxh3.New()
	n, err := io.Copy(io.MultiWriter(w, h), r)
	return ManifestFile{Size: n, XXH3: fmt.Sprintf("%016x", h.Sum64())}, err
}

// loadManifest reads the manifest of an extracted backup directory and
// checks its file names, without reading the files.
func loadManifest(dir string) (Manifest, error) {
	var m Manifest
	b, err := os.ReadFile(filepath.Join(dir, ManifestName))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return m, fmt.Errorf("%s is not a ringkv backup (no %s)", dir, ManifestName)
		}
		return m, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("backup manifest: %w", err)
	}
	return m, m.validate()
}

// Restore copies the verified backup in dir into dataDir, which must not
// exist or be empty, and opens the result as an engine to prove it is a
// store. The node then starts on dataDir with its old identity and member
// list.
func Restore(dir, dataDir string) (Manifest, error) {
	// Each file is checked against the manifest as it is copied, so it
	// is read once.
	m, err := loadManifest(dir)
	if err != nil {
		return m, err
	}
	if fi, err := os.Lstat(dataDir); err == nil {
		if fi.Mode()&os.ModeSymlink != 0 {
			// Renaming onto the link would replace it, not fill its target.
			return m, fmt.Errorf("%s is a symbolic link: give restore the real path", dataDir)
		}
		if !fi.IsDir() {
			return m, fmt.Errorf("%s exists and is not a directory: restore needs a new data directory", dataDir)
		}
		ents, err := os.ReadDir(dataDir)
		if err != nil {
			return m, err
		}
		if len(ents) > 0 {
			return m, fmt.Errorf("%s is not empty: restore needs a new data directory", dataDir)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return m, err
	}
	tmp := dataDir + ".restoring"
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(tmp)
		}
	}()
	if err := freshDir(tmp); err != nil {
		return m, err
	}
	for _, f := range m.Files {
		src, err := os.Open(filepath.Join(dir, f.Name))
		if err != nil {
			return m, fmt.Errorf("backup %s lacks %s, listed in its manifest: %w", dir, f.Name, err)
		}
		got, err := copyToFile(filepath.Join(tmp, f.Name), src)
		src.Close()
		if err != nil {
			return m, fmt.Errorf("restore %s: %w", f.Name, err)
		}
		if err := f.match(got); err != nil {
			return m, err
		}
	}
	if err := syncDir(vfs.Default, tmp); err != nil {
		return m, err
	}
	e, err := engine.Open(engine.Options{Dir: tmp, RowCacheSize: -1, GCInterval: -1, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return m, fmt.Errorf("restored files do not open as a store: %w", err)
	}
	if err := e.Close(); err != nil {
		return m, err
	}
	if err := os.Remove(dataDir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return m, err
	}
	if err := os.Rename(tmp, dataDir); err != nil {
		return m, err
	}
	ok = true
	return m, syncDir(vfs.Default, filepath.Dir(dataDir))
}

// freshDir makes path an empty directory, removing what a crash left there.
func freshDir(path string) error {
	if err := os.RemoveAll(path); err != nil {
		return err
	}
	return os.MkdirAll(path, 0o755)
}
