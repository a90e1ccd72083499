package main

import (
	"log/slog"

	sd "github.com/coreos/go-systemd/v22/daemon"
)

// notifyReady tells systemd the node serves; status is shown by
// systemctl status.
func notifyReady(lg *slog.Logger, status string) {
	notifySystemd(lg, sd.SdNotifyReady+"\nSTATUS="+status)
}

// notifyStopping tells systemd the node has begun to shut down.
func notifyStopping(lg *slog.Logger, status string) {
	notifySystemd(lg, sd.SdNotifyStopping+"\nSTATUS="+status)
}

// notifySystemd sends state to the service manager that started this
// process with NOTIFY_SOCKET set (systemd, Type=notify; see
// deploy/systemd/ringkv.service), and does nothing without one. A failed
// send is logged, never fatal: the node serves either way, and systemd
// judges a unit that never says READY=1 by its own TimeoutStartSec.
//
// The node says READY=1 once its ports serve, not once --join has
// succeeded: a join retries until a member answers, and a node whose
// peers are all down must still start (and be reachable) rather than be
// killed by the start timeout; /healthz tells a load balancer when it is
// ready for traffic. It says STOPPING=1 when a signal (or a failed
// server) begins the shutdown, before a --drain.
func notifySystemd(lg *slog.Logger, state string) {
	sent, err := sd.SdNotify(false, state)
	switch {
	case err != nil:
		lg.Warn("cannot notify systemd (NOTIFY_SOCKET)", "state", state, "err", err)
	case sent:
		lg.Debug("notified systemd", "state", state)
	}
}
