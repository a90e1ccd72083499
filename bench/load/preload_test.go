package load

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/ringkv/ringkv/client"
)

// TestPreloadKeys: every key is written once, through each client in
// turn, in order or shuffled; the first failure stops the preload and is
// returned naming its key.
func TestPreloadKeys(t *testing.T) {
	for _, shuffle := range []bool{false, true} {
		f := newFakeCluster(t, 2, 0)
		var cls []*client.Client
		for _, a := range f.addrs() {
			cl, err := client.New(a)
			if err != nil {
				t.Fatal(err)
			}
			cls = append(cls, cl)
		}
		err := PreloadKeys(context.Background(), PreloadOptions{Clients: cls, Keys: 200, KeyPrefix: "pk-", Value: []byte("v"), Concurrency: 4, Shuffle: shuffle})
		if err != nil {
			t.Fatal(err)
		}
		f.mu.Lock()
		for i := range 200 {
			if string(f.kv[fmt.Sprint("pk-", i)]) != "v" {
				t.Errorf("shuffle %v: pk-%d not written", shuffle, i)
			}
		}
		f.mu.Unlock()
		if f.puts.Load() != 200 {
			t.Errorf("shuffle %v: %d PUTs, want 200", shuffle, f.puts.Load())
		}
	}
	f := newFakeCluster(t, 1, 0)
	f.token = "s3cret"
	cl, _ := client.New(f.addrs()[0])
	err := PreloadKeys(context.Background(), PreloadOptions{Clients: []*client.Client{cl}, Keys: 100, KeyPrefix: "pk-", Concurrency: 1})
	if err == nil || !strings.Contains(err.Error(), "preload: PUT pk-0: 401") || f.unauth.Load() != 1 {
		t.Errorf("preload with a failing PUT: %v", err)
	}
}
