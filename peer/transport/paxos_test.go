package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/ringkv/ringkv/peer"
)

func TestPaxosRoundTrip(t *testing.T) {
	rec := wireRec(9, "value")
	for _, req := range []peer.PaxosRequest{
		{Kind: peer.PaxosPrepare, Key: []byte("k"), Ballot: peer.Ballot{TS: 5, Node: 7}},
		{Kind: peer.PaxosPropose, Key: []byte("k"), Ballot: peer.Ballot{TS: 1 << 62, Node: 1<<64 - 1}, Record: rec},
		{Kind: peer.PaxosCommit, Key: bytes.Repeat([]byte("k"), peer.MaxKeySize), Ballot: peer.Ballot{TS: 5}, Record: bigRecord},
	} {
		got, err := DecodePaxos(AppendPaxos(nil, req))
		if err != nil || !reflect.DeepEqual(got, req) {
			t.Errorf("round trip of %v: %+v, %v", req.Kind, got, err)
		}
	}
	for _, rep := range []peer.PaxosReply{
		{},
		{OK: true, Promised: peer.Ballot{TS: 3, Node: 1}},
		{OK: true, Promised: peer.Ballot{TS: 3, Node: 1}, Accepted: peer.Ballot{TS: 2, Node: 2}, Value: rec, Committed: peer.Ballot{TS: 1, Node: 3}, Current: bigRecord},
		{Promised: peer.Ballot{TS: 8, Node: 8}, Current: rec},
	} {
		got, err := DecodePaxosReply(AppendPaxosReply(nil, rep))
		if err != nil || !reflect.DeepEqual(got, rep) {
			t.Errorf("round trip of %+v: %+v, %v", rep, got, err)
		}
	}
}

func TestPaxosRejects(t *testing.T) {
	rec := wireRec(9, "value")
	good := AppendPaxos(nil, peer.PaxosRequest{Kind: peer.PaxosPropose, Key: []byte("k"), Ballot: peer.Ballot{TS: 5, Node: 7}, Record: rec})
	for name, b := range map[string][]byte{
		"empty":          nil,
		"wrong kind":     append([]byte{kindApply}, good[1:]...),
		"kind 0":         AppendPaxos(nil, peer.PaxosRequest{Key: []byte("k"), Record: rec}),
		"kind 4":         append(append([]byte{}, good[:2]...), append([]byte{4}, good[3:]...)...),
		"no key":         AppendPaxos(nil, peer.PaxosRequest{Kind: peer.PaxosPropose, Record: rec}),
		"key too long":   AppendPaxos(nil, peer.PaxosRequest{Kind: peer.PaxosPrepare, Key: bytes.Repeat([]byte("k"), peer.MaxKeySize+1)}),
		"prepare record": AppendPaxos(nil, peer.PaxosRequest{Kind: peer.PaxosPrepare, Key: []byte("k"), Record: rec}),
		"bad record":     AppendPaxos(nil, peer.PaxosRequest{Kind: peer.PaxosCommit, Key: []byte("k"), Record: []byte("junk")}),
		"truncated":      good[:len(good)-1],
		"trailing":       append(append([]byte{}, good...), 0),
		"short ballot":   good[:10],
	} {
		if _, err := DecodePaxos(b); !errors.Is(err, peer.ErrBadMessage) {
			t.Errorf("%s: %v, want ErrBadMessage", name, err)
		}
	}
	okRep := AppendPaxosReply(nil, peer.PaxosReply{OK: true, Current: rec})
	for name, b := range map[string][]byte{
		"empty":        nil,
		"ok 2":         append(append([]byte{}, okRep[:2]...), append([]byte{2}, okRep[3:]...)...),
		"bad value":    AppendPaxosReply(nil, peer.PaxosReply{Value: []byte("junk")}),
		"bad current":  AppendPaxosReply(nil, peer.PaxosReply{Current: []byte("junk")}),
		"absent, data": append(AppendPaxosReply(nil, peer.PaxosReply{})[:2+1+48+1], 0, 1, 'x'),
		"truncated":    okRep[:len(okRep)-1],
	} {
		if _, err := DecodePaxosReply(b); !errors.Is(err, peer.ErrBadMessage) {
			t.Errorf("reply %s: %v, want ErrBadMessage", name, err)
		}
	}
}

func FuzzDecodePaxos(f *testing.F) {
	rec := wireRec(9, "value")
	f.Add(AppendPaxos(nil, peer.PaxosRequest{Kind: peer.PaxosPrepare, Key: []byte("k"), Ballot: peer.Ballot{TS: 5, Node: 7}}))
	f.Add(AppendPaxos(nil, peer.PaxosRequest{Kind: peer.PaxosCommit, Key: []byte("k"), Ballot: peer.Ballot{TS: 5, Node: 7}, Record: rec}))
	f.Add(AppendPaxosReply(nil, peer.PaxosReply{OK: true, Value: rec, Current: rec}))
	f.Fuzz(func(t *testing.T, b []byte) {
		if req, err := DecodePaxos(b); err == nil {
			again, err := DecodePaxos(AppendPaxos(nil, req))
			if err != nil || !reflect.DeepEqual(again, req) {
				t.Fatalf("re-encoding %+v: %+v, %v", req, again, err)
			}
		}
		if rep, err := DecodePaxosReply(b); err == nil {
			again, err := DecodePaxosReply(AppendPaxosReply(nil, rep))
			if err != nil || !reflect.DeepEqual(again, rep) {
				t.Fatalf("re-encoding %+v: %+v, %v", rep, again, err)
			}
		}
	})
}

// TestClusterInternalPaxos: a Paxos message crosses to the replica and its
// answer comes back; the replica's refusals keep their meaning.
func TestClusterInternalPaxos(t *testing.T) {
	ts := newTestServer(t, Config{})
	client := mustNew(t, Config{NodeID: "n1"})
	defer client.Close()
	rec := testRecord(9, "v")
	want := peer.PaxosReply{OK: true, Promised: peer.Ballot{TS: 4, Node: 2}, Accepted: peer.Ballot{TS: 3, Node: 1}, Value: rec, Current: rec}
	ts.cl.SetPaxos(want, nil)
	req := peer.PaxosRequest{Kind: peer.PaxosPrepare, Key: []byte("k"), Ballot: peer.Ballot{TS: 4, Node: 2}}
	got, err := client.Paxos(context.Background(), ts.addr, req)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("Paxos = %+v, %v; want %+v", got, err, want)
	}
	if reqs := ts.cl.PaxosReqs(); len(reqs) != 1 || !reflect.DeepEqual(reqs[0], req) {
		t.Fatalf("the replica got %+v, want %+v", reqs, req)
	}
	for _, tc := range []struct {
		err  error
		want error
	}{
		{fmt.Errorf("%w: key", peer.ErrNotOwner), peer.ErrNotOwner},
		{fmt.Errorf("%w: ahead", peer.ErrClockOffset), peer.ErrClockOffset},
	} {
		ts.cl.SetPaxos(peer.PaxosReply{}, tc.err)
		if _, err := client.Paxos(context.Background(), ts.addr, req); !errors.Is(err, tc.want) {
			t.Errorf("a replica's %v came back as %v", tc.err, err)
		}
	}
	resp := ts.post(t, "/internal/paxos", []byte("junk"))
	wantStatus(t, "junk", resp, 400)
}
