package testnet

import (
	"fmt"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// PassXDPOnLAN attaches an XDP program that passes every frame to the
// bridge's port of each named member. On veth, a frame that a native XDP
// program sends back out (XDP_TX or a redirect, as vipd's dsr data plane
// does) is dropped unless the peer end runs an XDP program too, so a
// member that runs one needs this on its port. The program is attached
// through netlink, not a bpf_link, so it stays until the world's
// namespaces go.
func (w *World) PassXDPOnLAN(members ...string) error {
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: "pass_all", Type: ebpf.XDP, License: "GPL",
		// Frames in several buffers too: veth keeps its peer's
		// segmentation offload only for such a program.
		Flags:        unix.BPF_F_XDP_HAS_FRAGS,
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 2 /* XDP_PASS */), asm.Return()},
	})
	if err != nil {
		return fmt.Errorf("testnet: XDP pass program: %w", err)
	}
	defer prog.Close() // the interfaces hold it
	return w.lan.inNamespace(func() error {
		for _, m := range members {
			l, err := netlink.LinkByName("v" + m)
			if err != nil {
				return fmt.Errorf("testnet: LAN port of %s: %w", m, err)
			}
			if err := netlink.LinkSetXdpFdWithFlags(l, prog.FD(), nl.XDP_FLAGS_DRV_MODE); err != nil {
				return fmt.Errorf("testnet: attach XDP to the LAN port of %s: %w", m, err)
			}
		}
		return nil
	})
}

// FillChecksums makes the named members compute the TCP and UDP
// checksums of what they send on the LAN themselves, instead of leaving
// them for the device (veth's checksum offload, on by default). A frame
// that a native XDP program sends back out has lost the kernel's note that
// its checksum is still to be filled, and would reach its receiver with a
// partial checksum and be dropped; a real NIC fills it on the wire. Every
// member whose packets cross a node's XDP program needs this (the
// client). Turning checksum offload off also turns off segmentation
// offload, so the members send MTU-sized frames.
func (w *World) FillChecksums(members ...string) error {
	for _, m := range members {
		h := w.Host(m)
		if h == nil {
			return fmt.Errorf("testnet: no member %s", m)
		}
		if err := h.inNamespace(func() error { return setTxChecksum(LANInterface, false) }); err != nil {
			return fmt.Errorf("testnet: %s: checksum offload off: %w", m, err)
		}
	}
	return nil
}

// setTxChecksum sets an interface's transmit checksum offload through the
// ethtool ioctl (ETHTOOL_STXCSUM); the ethtool program is not needed.
func setTxChecksum(ifname string, on bool) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	value := &struct{ cmd, data uint32 }{cmd: unix.ETHTOOL_STXCSUM}
	if on {
		value.data = 1
	}
	var req struct {
		name [unix.IFNAMSIZ]byte
		data unsafe.Pointer
		_    [16]byte
	}
	copy(req.name[:], ifname)
	req.data = unsafe.Pointer(value)
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&req))); errno != 0 {
		return fmt.Errorf("%s: SIOCETHTOOL: %w", ifname, errno)
	}
	return nil
}
