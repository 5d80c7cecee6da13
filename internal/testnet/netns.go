package testnet

// InNamespace runs fn on an OS thread inside the member's network
// namespace and waits for it. Sockets fn opens stay in the namespace after
// it returns, so code that opens its own sockets (a BFD manager in a test)
// can be pointed into a node with it.
func (h *Host) InNamespace(fn func() error) error { return h.inNamespace(fn) }
