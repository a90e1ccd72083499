package membership

import (
	"encoding/json"
	"testing"
)

// TestWireFormats pins the JSON that nodes store and gossip (the member
// list, a node's metadata): running nodes of earlier releases read it, so
// it must stay byte for byte what peer.Gossip wrote.
func TestWireFormats(t *testing.T) {
	for _, tc := range []struct {
		v    any
		want string
	}{
		{List{"a": {ID: "a", HTTPAddr: "a:80", GossipAddr: "a:7946", Stamp: 5}},
			`{"a":{"id":"a","http_addr":"a:80","gossip_addr":"a:7946","stamp":5}}`},
		{Entry{ID: "a", HTTPAddr: "a:80", GossipAddr: "a:7946", Stamp: 5, Removed: true, Leaving: true, Proof: []byte{1, 2}, PeerAddr: "a:81"},
			`{"id":"a","http_addr":"a:80","gossip_addr":"a:7946","stamp":5,"removed":true,"leaving":true,"proof":"AQI=","peer_addr":"a:81"}`},
		{nodeMeta{HTTPAddr: "a:80", Stamp: 5}, `{"h":"a:80","s":5}`},
		{nodeMeta{HTTPAddr: "a:80", Stamp: 5, Leaving: true, PeerAddr: "a:81", Clock: true}, `{"h":"a:80","s":5,"l":true,"p":"a:81","c":true}`},
	} {
		b, err := json.Marshal(tc.v)
		if err != nil || string(b) != tc.want {
			t.Errorf("%T encodes as %s (%v), want %s", tc.v, b, err, tc.want)
		}
	}
	if rosterMeta != "ring-roster" || msgClockPing != 1 || msgClockReply != 2 {
		t.Errorf("the member list's metadata key or the clock messages' tags changed")
	}
}
