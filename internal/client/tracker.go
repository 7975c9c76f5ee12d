package client

import (
	"context"
	"time"

	"avalanche/internal/identity"
	"avalanche/internal/manifest"
	"avalanche/internal/swarm"
	"avalanche/internal/tracker"
	"avalanche/internal/wire"
)

// Reporter is implemented by announcers that can also report a neighbour
// that sent a bad block.
type Reporter interface {
	Report(ctx context.Context, content manifest.ID, offender identity.ID, reason string) error
}

// Tracker adapts a tracker.Client to Announcer and Reporter.
type Tracker struct{ C *tracker.Client }

var (
	_ Announcer = (*Tracker)(nil)
	_ Reporter  = (*Tracker)(nil)
)

// Announce implements Announcer.
func (t *Tracker) Announce(ctx context.Context, a Announce) ([]swarm.PeerAddr, time.Duration, error) {
	ev := tracker.EventProgress
	switch a.Event {
	case "started":
		ev = tracker.EventStarted
	case "completed":
		ev = tracker.EventCompleted
	case "stopped":
		ev = tracker.EventStopped
	}
	resp, err := t.C.Announce(ctx, tracker.AnnounceRequest{
		Content: a.Content, Port: a.Port, Role: tracker.RolePeer, Event: ev, Left: uint64(a.Left),
		Bytes: tracker.Bytes{
			Uploaded:   uint64(a.Uploaded),
			Downloaded: uint64(a.FromPeers + a.FromOrigin + a.FromEdge + a.FromHTTP),
			FromOrigin: uint64(a.FromOrigin + a.FromHTTP),
			FromEdge:   uint64(a.FromEdge),
			FromPeers:  uint64(a.FromPeers),
		},
	})
	if err != nil {
		return nil, 0, err
	}
	peers := make([]swarm.PeerAddr, 0, len(resp.Peers))
	for _, p := range resp.Peers {
		role := wire.RolePeer
		switch p.Role {
		case tracker.RoleOrigin:
			role = wire.RoleOrigin
		case tracker.RoleEdge:
			role = wire.RoleEdge
		}
		peers = append(peers, swarm.PeerAddr{ID: p.ID, Addr: p.Addr.String(), Role: role})
	}
	return peers, resp.Interval, nil
}

// Report implements Reporter.
func (t *Tracker) Report(ctx context.Context, content manifest.ID, offender identity.ID, reason string) error {
	_, err := t.C.Report(ctx, content, offender, reason)
	return err
}
