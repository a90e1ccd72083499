package membership

import (
	"encoding/binary"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/ringkv/ringkv/peer"
)

// Clock probes: besides memberlist's own probes (one member a second, so
// a peer is measured only every few seconds), a node sends each live
// member a clock ping as a gossip user message when the member comes
// alive and every second, so its clock is compared with its peers'
// within a round trip of their meeting. A ping carries the sender's send
// time (its own reference) and name; the reply echoes the send time and
// adds the replier's wall clock. Member lists are JSON, so they never
// start with these bytes.
const (
	msgClockPing  = 0x01 // | 8 bytes send time | sender name
	msgClockReply = 0x02 // | 8 bytes send time | clock payload | replier name
)

// pingClocks sends a clock ping to every live member but this one.
func (g *Gossip) pingClocks() {
	if g.cfg.Offsets == nil {
		return
	}
	msg := binary.BigEndian.AppendUint64([]byte{msgClockPing}, uint64(time.Since(g.started)))
	msg = append(msg, g.cfg.NodeID...)
	ml := g.ml.Load()
	for _, m := range ml.Members() {
		if m.Name != g.cfg.NodeID {
			if err := ml.SendBestEffort(m, msg); err != nil {
				g.cfg.Logger.Debug("cannot send a clock ping", "node", m.Name, "err", err)
			}
		}
	}
}

// clockMsg answers a clock ping, or measures the offset a reply shows.
func (g *Gossip) clockMsg(b []byte) {
	const payloadLen = peer.ClockPayloadLen
	switch {
	case b[0] == msgClockPing && len(b) > 9:
		ml := g.ml.Load()
		if ml == nil {
			return // not up yet: the sender pings again in a second
		}
		from := string(b[9:])
		reply := append([]byte{msgClockReply}, b[1:9]...)
		reply = peer.AppendClockPayload(reply, g.cfg.Now())
		reply = append(reply, g.cfg.NodeID...)
		for _, m := range ml.Members() {
			if m.Name == from {
				if err := ml.SendBestEffort(m, reply); err != nil {
					g.cfg.Logger.Debug("cannot answer a clock ping", "node", from, "err", err)
				}
				return
			}
		}
	case b[0] == msgClockReply && len(b) > 9+payloadLen && g.cfg.Offsets != nil:
		sent := time.Duration(binary.BigEndian.Uint64(b[1:9]))
		wall, ok := peer.ParseClockPayload(b[9 : 9+payloadLen])
		rtt := time.Since(g.started) - sent
		if from := string(b[9+payloadLen:]); ok && rtt >= 0 && from != g.cfg.NodeID {
			g.cfg.Offsets.Observe(from, wall, rtt)
		}
	}
}

// pingDelegate carries this node's wall clock on every probe's ack, and
// hands the clocks of probed peers, with the probe's round trip, to the
// clock monitor.
type pingDelegate struct{ g *Gossip }

func (p pingDelegate) AckPayload() []byte { return peer.AppendClockPayload(nil, p.g.cfg.Now()) }

func (p pingDelegate) NotifyPingComplete(other *memberlist.Node, rtt time.Duration, payload []byte) {
	if p.g.cfg.Offsets == nil || other == nil || other.Name == p.g.cfg.NodeID {
		return
	}
	if wall, ok := peer.ParseClockPayload(payload); ok {
		p.g.cfg.Offsets.Observe(other.Name, wall, rtt)
	}
}
