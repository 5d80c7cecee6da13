package agent

// signal folds bursts of change notifications into one pending wake-up.
// Senders never block, so it is safe to call from library callbacks.
type signal chan struct{}

func newSignal() signal { return make(signal, 1) }

func (s signal) notify() {
	select {
	case s <- struct{}{}:
	default:
	}
}
