package xdp

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/rlimit"

	"github.com/vipd/vipd/internal/lb"
	"github.com/vipd/vipd/internal/maglev"
)

// Plane is the loaded XDP program and its maps. Its methods may be called
// from several goroutines; they run one at a time.
type Plane struct {
	log   *slog.Logger
	objs  dsrObjects
	inner *ebpf.MapSpec // the template of a load balancer's table

	mu       sync.Mutex
	attached map[string]*attachment // by interface name
	failed   map[string]string      // interface name -> why it is not attached
	wanted   []string               // interfaces of the last Set, in order
	lbs      map[string]*programmed // by load balancer ID
	free     []uint32               // ids no load balancer uses
}

// programmed is a load balancer as the maps hold it.
type programmed struct {
	id    uint32
	key   dsrVipKey
	table *ebpf.Map
	slots []slotValue // what table holds
}

// slotValue is bpf/dsr.c's struct slot.
type slotValue struct {
	MAC     [6]byte
	Flags   uint16
	Ifindex uint32
}

const slotValid = 1 // bpf/dsr.c's SLOT_VALID

// New loads the program and its maps into the kernel. It attaches nothing
// until Set. A nil log discards.
func New(log *slog.Logger) (*Plane, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK.
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, fmt.Errorf("xdp: raise memlock limit: %w", err)
	}
	spec, err := loadDsr()
	if err != nil {
		return nil, fmt.Errorf("xdp: %w", err)
	}
	p := &Plane{
		log: log, inner: spec.Maps[dsrMapTables].InnerMap.Copy(),
		attached: map[string]*attachment{}, failed: map[string]string{}, lbs: map[string]*programmed{},
	}
	if err := spec.LoadAndAssign(&p.objs, nil); err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("xdp: load program: %+v", ve)
		}
		return nil, fmt.Errorf("xdp: load program: %w", err)
	}
	for id := maxLoadBalancers - 1; id >= 0; id-- {
		p.free = append(p.free, uint32(id))
	}
	return p, nil
}

// Set makes the program run on s.Interfaces and the maps hold s's load
// balancers. Load balancers are programmed even where an interface failed
// to attach; the error names every interface that did, and every load
// balancer that could not be written.
func (p *Plane) Set(ctx context.Context, s State) error {
	if len(s.Interfaces) > maxInterfaces {
		return fmt.Errorf("xdp: %d interfaces, at most %d", len(s.Interfaces), maxInterfaces)
	}
	for _, l := range s.LoadBalancers {
		if err := l.validate(); err != nil {
			return fmt.Errorf("xdp: %w", err)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	errs := p.setInterfaces(s.Interfaces)
	errs = append(errs, p.setLoadBalancers(s.LoadBalancers)...)
	return errors.Join(errs...)
}

func (p *Plane) setLoadBalancers(want []LoadBalancer) []error {
	var errs []error
	keep := make(map[string]bool, len(want))
	for _, l := range want {
		keep[l.ID] = true
	}
	for id, pr := range p.lbs {
		if !keep[id] {
			if err := p.remove(id, pr); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for _, l := range want {
		if err := p.program(l); err != nil {
			errs = append(errs, fmt.Errorf("xdp: load balancer %s: %w", l.ID, err))
		}
	}
	return errs
}

// program writes one load balancer: a new table if its slots changed
// (swapped in whole), then its key.
func (p *Plane) program(l LoadBalancer) error {
	key := vipKey(l)
	slots := tableSlots(l.Backends)
	pr, ok := p.lbs[l.ID]
	if ok && pr.key == key && slices.Equal(pr.slots, slots) {
		return nil
	}
	if !ok {
		if len(p.free) == 0 {
			return fmt.Errorf("more than %d load balancers in mode dsr", maxLoadBalancers)
		}
		pr = &programmed{id: p.free[len(p.free)-1]}
		// A reused id starts its counters from zero.
		zero := make([]dsrCounter, ebpf.MustPossibleCPU())
		if err := p.objs.Counters.Put(pr.id, zero); err != nil {
			return fmt.Errorf("reset counters: %w", err)
		}
	}
	if !ok || !slices.Equal(pr.slots, slots) {
		table, err := p.newTable(slots)
		if err != nil {
			return err
		}
		if err := p.objs.Tables.Put(pr.id, table); err != nil {
			table.Close()
			return fmt.Errorf("swap in table: %w", err)
		}
		// The kernel holds the old table until no program run uses it.
		if pr.table != nil {
			pr.table.Close()
		}
		pr.table, pr.slots = table, slots
	}
	if !ok || pr.key != key {
		if err := p.objs.Lbs.Put(key, dsrLbValue{Id: pr.id}); err != nil {
			if !ok { // not recorded: leave nothing behind
				_ = p.objs.Tables.Delete(pr.id)
				pr.table.Close()
			}
			return fmt.Errorf("add key: %w", err)
		}
		if ok {
			if err := p.objs.Lbs.Delete(pr.key); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				return fmt.Errorf("delete old key: %w", err)
			}
		}
		pr.key = key
	}
	if !ok {
		p.free = p.free[:len(p.free)-1]
		p.lbs[l.ID] = pr
	}
	return nil
}

// remove takes a load balancer out: its key first, so no packet finds a
// table that is going.
func (p *Plane) remove(id string, pr *programmed) error {
	if err := p.objs.Lbs.Delete(pr.key); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("xdp: load balancer %s: delete key: %w", id, err)
	}
	if err := p.objs.Tables.Delete(pr.id); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("xdp: load balancer %s: delete table: %w", id, err)
	}
	if pr.table != nil {
		pr.table.Close()
	}
	delete(p.lbs, id)
	p.free = append(p.free, pr.id)
	return nil
}

// newTable creates a load balancer's table holding slots.
func (p *Plane) newTable(slots []slotValue) (*ebpf.Map, error) {
	table, err := ebpf.NewMap(p.inner)
	if err != nil {
		return nil, fmt.Errorf("create table: %w", err)
	}
	if slots == nil {
		return table, nil // all zero: no backend, packets are dropped
	}
	keys := make([]uint32, len(slots))
	for i := range keys {
		keys[i] = uint32(i)
	}
	_, err = table.BatchUpdate(keys, slots, nil)
	if errors.Is(err, ebpf.ErrNotSupported) {
		err = nil
		for i := range keys {
			if err = table.Put(keys[i], slots[i]); err != nil {
				break
			}
		}
	}
	if err != nil {
		table.Close()
		return nil, fmt.Errorf("fill table: %w", err)
	}
	return table, nil
}

// tableSlots is the Maglev table of backends as the program reads it, or
// nil with no backends.
func tableSlots(backends []Backend) []slotValue {
	mb := make([]maglev.Backend, len(backends))
	for i, b := range backends {
		mb[i] = maglev.Backend{Key: b.Addr.String(), Weight: b.Weight}
	}
	table := maglev.TableOfSize(mb, TableSize)
	if table == nil {
		return nil
	}
	values := make([]slotValue, len(backends))
	for i, b := range backends {
		values[i] = slotValue{Flags: slotValid, Ifindex: uint32(b.Ifindex)}
		copy(values[i].MAC[:], b.MAC)
	}
	slots := make([]slotValue, TableSize)
	for i, k := range table {
		slots[i] = values[k]
	}
	return slots
}

// vipKey is bpf/dsr.c's struct vip_key for l.
func vipKey(l LoadBalancer) dsrVipKey {
	k := dsrVipKey{Port: htons(l.Port), Proto: ipProto(l.Protocol), Family: 6}
	a := l.Address.Unmap()
	if a.Is4() {
		k.Family = 4
		b := a.As4()
		copy(k.Addr[:], b[:])
	} else {
		k.Addr = a.As16()
	}
	return k
}

func ipProto(p lb.Protocol) uint8 {
	if p == lb.UDP {
		return 17
	}
	return 6
}

// htons is the port as the program reads it from the packet: its bytes in
// network order, loaded as a host-order integer.
func htons(v uint16) uint16 {
	return binary.NativeEndian.Uint16(binary.BigEndian.AppendUint16(nil, v))
}

// Counters returns each programmed load balancer's packets and bytes.
func (p *Plane) Counters() (map[string]Counter, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]Counter, len(p.lbs))
	var errs []error
	for id, pr := range p.lbs {
		var per []dsrCounter
		if err := p.objs.Counters.Lookup(pr.id, &per); err != nil {
			errs = append(errs, fmt.Errorf("xdp: counters of %s: %w", id, err))
			continue
		}
		var c Counter
		for _, v := range per {
			c.Packets += v.Packets
			c.Bytes += v.Bytes
		}
		out[id] = c
	}
	return out, errors.Join(errs...)
}

// Interfaces says, for each interface of the last Set, whether and how
// the program is attached.
func (p *Plane) Interfaces() []InterfaceStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]InterfaceStatus, 0, len(p.wanted))
	for _, name := range p.wanted {
		st := InterfaceStatus{Name: name, Error: p.failed[name]}
		if a := p.attached[name]; a != nil {
			st.Mode = a.mode
		}
		out = append(out, st)
	}
	return out
}

// Close detaches the program everywhere and frees the maps.
func (p *Plane) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var errs []error
	for name, a := range p.attached {
		errs = append(errs, a.link.Close())
		delete(p.attached, name)
	}
	for id, pr := range p.lbs {
		if pr.table != nil {
			pr.table.Close()
		}
		delete(p.lbs, id)
	}
	errs = append(errs, p.objs.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("xdp: close: %w", err)
	}
	return nil
}

// setIfaceMAC records an interface's own MAC for the program.
func (p *Plane) setIfaceMAC(ifindex int, mac net.HardwareAddr) error {
	v := dsrIface{}
	copy(v.Mac[:], mac)
	if err := p.objs.Ifaces.Put(uint32(ifindex), v); err != nil {
		return fmt.Errorf("xdp: interface %d: record MAC: %w", ifindex, err)
	}
	return nil
}
