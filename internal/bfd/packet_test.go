package bfd

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// capturedPacket is one line of testdata/captured.txt.
type capturedPacket struct {
	line    string
	sender  string // bird, frr or vipd
	summary map[string]string
	payload []byte
}

func readCaptured(tb testing.TB) []capturedPacket {
	tb.Helper()
	f, err := os.Open("testdata/captured.txt")
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var out []capturedPacket
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		line := scanner.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		payload, err := hex.DecodeString(fields[len(fields)-1])
		if err != nil {
			tb.Fatalf("%q: %v", line, err)
		}
		p := capturedPacket{line: line, sender: fields[0], summary: map[string]string{}, payload: payload}
		for _, f := range fields[3 : len(fields)-1] {
			k, v, _ := strings.Cut(f, "=")
			p.summary[k] = v
		}
		out = append(out, p)
	}
	if err := scanner.Err(); err != nil {
		tb.Fatal(err)
	}
	if len(out) < 20 {
		tb.Fatalf("only %d captured packets", len(out))
	}
	return out
}

func TestCapturedPackets(t *testing.T) {
	senders := map[string]int{}
	for _, c := range readCaptured(t) {
		p, err := ParseReceived(c.payload, false)
		if err != nil {
			t.Errorf("%s: %v", c.line, err)
			continue
		}
		senders[c.sender]++
		flags := ""
		for _, f := range []struct {
			set  bool
			name string
		}{{p.Poll, "P"}, {p.Final, "F"}, {p.CPI, "C"}, {p.AuthBit, "A"}, {p.Demand, "D"}, {p.Multipoint, "M"}} {
			if f.set {
				flags += f.name
			}
		}
		if flags == "" {
			flags = "-"
		}
		got := map[string]string{"ttl": c.summary["ttl"], "state": p.State.String(), "diag": strconv.Itoa(int(p.Diag)), "flags": flags}
		if diff := cmp.Diff(c.summary, got); diff != "" {
			t.Errorf("%s: decoded (-want +got):\n%s", c.line, diff)
		}
		b, err := p.MarshalBinary()
		if err != nil || !bytes.Equal(b, c.payload) {
			t.Errorf("%s: re-encoded as %x, %v", c.line, b, err)
		}
	}
	for _, s := range []string{"bird", "frr", "vipd"} {
		if senders[s] == 0 {
			t.Errorf("no packets from %s", s)
		}
	}
}

func TestMarshalLayout(t *testing.T) {
	p := ControlPacket{
		Version: 1, Diag: DiagAdministrativelyDown, State: Up, Poll: true, Demand: true,
		DetectMult: 3, MyDiscriminator: 0x01020304, YourDiscriminator: 0x0a0b0c0d,
		DesiredMinTx: 300 * time.Millisecond, RequiredMinRx: time.Second, RequiredMinEcho: 50 * time.Millisecond,
	}
	got, err := p.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{
		0x27, 0xe2, 3, 24, // version 1, diag 7; Up, P, D; mult; length
		1, 2, 3, 4, 10, 11, 12, 13,
		0x00, 0x04, 0x93, 0xe0, // 300000 µs
		0x00, 0x0f, 0x42, 0x40, // 1000000 µs
		0x00, 0x00, 0xc3, 0x50, // 50000 µs
	}
	if !bytes.Equal(got, want) {
		t.Errorf("got  %x\nwant %x", got, want)
	}
	var back ControlPacket
	if err := back.UnmarshalBinary(got); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(p, back); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}

func TestMarshalRejects(t *testing.T) {
	tests := []struct {
		name string
		p    ControlPacket
		want error
	}{
		{"negative interval", ControlPacket{DesiredMinTx: -time.Second}, ErrInterval},
		{"huge interval", ControlPacket{RequiredMinRx: 2 * time.Hour}, ErrInterval},
		{"long auth", ControlPacket{AuthBit: true, Auth: make([]byte, 240)}, ErrLength},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tt.p.MarshalBinary(); !errors.Is(err, tt.want) {
				t.Errorf("MarshalBinary: %v, want %v", err, tt.want)
			}
		})
	}
}

// valid is a packet every check accepts.
func valid() []byte {
	p := ControlPacket{Version: 1, State: Up, DetectMult: 3, MyDiscriminator: 1, YourDiscriminator: 2,
		DesiredMinTx: time.Second, RequiredMinRx: time.Second}
	b, _ := p.MarshalBinary()
	return b
}

func TestParseReceivedChecks(t *testing.T) {
	tests := []struct {
		name   string
		change func(b []byte) []byte
		auth   bool
		want   error
	}{
		{"valid", func(b []byte) []byte { return b }, false, nil},
		{"trailing bytes ignored", func(b []byte) []byte { return append(b, 0, 0) }, false, nil},
		{"short", func(b []byte) []byte { return b[:23] }, false, ErrShort},
		{"version 0", func(b []byte) []byte { b[0] &= 0x1f; return b }, false, ErrVersion},
		{"version 2", func(b []byte) []byte { b[0] = b[0]&0x1f | 2<<5; return b }, false, ErrVersion},
		{"length below 24", func(b []byte) []byte { b[3] = 20; return b }, false, ErrLength},
		{"length beyond payload", func(b []byte) []byte { b[3] = 30; return b }, false, ErrLength},
		{"auth with length 24", func(b []byte) []byte { b[1] |= flagAuth; return b }, true, ErrLength},
		{"detect mult zero", func(b []byte) []byte { b[2] = 0; return b }, false, ErrDetectMult},
		{"multipoint", func(b []byte) []byte { b[1] |= flagMultipoint; return b }, false, ErrMultipoint},
		{"my discriminator zero", func(b []byte) []byte { copy(b[4:8], []byte{0, 0, 0, 0}); return b }, false, ErrMyDiscriminator},
		{"your discriminator zero while up", func(b []byte) []byte { copy(b[8:12], []byte{0, 0, 0, 0}); return b }, false, ErrYourDiscriminator},
		{"your discriminator zero while init", func(b []byte) []byte {
			copy(b[8:12], []byte{0, 0, 0, 0})
			b[1] = b[1]&0x3f | uint8(Init)<<6
			return b
		}, false, ErrYourDiscriminator},
		{"your discriminator zero while down", func(b []byte) []byte {
			copy(b[8:12], []byte{0, 0, 0, 0})
			b[1] = b[1]&0x3f | uint8(Down)<<6
			return b
		}, false, nil},
		{"your discriminator zero while admin down", func(b []byte) []byte {
			copy(b[8:12], []byte{0, 0, 0, 0})
			b[1] &= 0x3f
			return b
		}, false, nil},
		{"auth bit without auth", func(b []byte) []byte { b[1] |= flagAuth; b[3] = 28; return append(b, 1, 4, 0, 0) }, false, ErrAuth},
		{"no auth bit with auth", func(b []byte) []byte { return b }, true, ErrAuth},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseReceived(tt.change(valid()), tt.auth)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Errorf("ParseReceived: %v, want %v", err, tt.want)
			}
		})
	}
}

func TestStateAndDiagNames(t *testing.T) {
	if got := fmtAll(AdminDown, Down, Init, Up, State(4)); got != "AdminDown Down Init Up State(4)" {
		t.Errorf("states: %s", got)
	}
	if got := fmtAll(DiagNone, DiagControlDetectionTimeExpired, DiagAdministrativelyDown, Diag(9)); got != "None ControlDetectionTimeExpired AdministrativelyDown Diag(9)" {
		t.Errorf("diags: %s", got)
	}
	b, err := Up.MarshalText()
	if err != nil || string(b) != "Up" {
		t.Errorf("MarshalText: %q %v", b, err)
	}
}

func fmtAll[T interface{ String() string }](vs ...T) string {
	var out []string
	for _, v := range vs {
		out = append(out, v.String())
	}
	return strings.Join(out, " ")
}

// seedCaptured adds every captured packet, and the valid one, as seeds.
func seedCaptured(f *testing.F) {
	for _, c := range readCaptured(f) {
		f.Add(c.payload)
	}
	f.Add(valid())
	f.Add(append(valid(), 0xff))
}

// FuzzControlPacket checks that whatever decodes re-encodes to exactly
// the bytes Length covers, and decodes again to the same packet.
func FuzzControlPacket(f *testing.F) {
	seedCaptured(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		var p ControlPacket
		if err := p.UnmarshalBinary(b); err != nil {
			if !errors.Is(err, ErrShort) && !errors.Is(err, ErrLength) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		out, err := p.MarshalBinary()
		if err != nil {
			t.Fatalf("decoded %+v but cannot encode it: %v", p, err)
		}
		if !bytes.Equal(out, b[:b[3]]) {
			t.Fatalf("re-encoded\n%x\nfrom\n%x", out, b[:b[3]])
		}
		var again ControlPacket
		if err := again.UnmarshalBinary(out); err != nil {
			t.Fatalf("re-encoded packet does not decode: %v", err)
		}
		if diff := cmp.Diff(p, again, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("decode → encode → decode changed the packet (-first +second):\n%s", diff)
		}
	})
}

// FuzzParseReceived checks that an accepted packet satisfies every
// §6.8.6 rule and that a refused one names a known reason.
func FuzzParseReceived(f *testing.F) {
	seedCaptured(f)
	reasons := []error{ErrShort, ErrLength, ErrVersion, ErrDetectMult, ErrMultipoint, ErrMyDiscriminator, ErrYourDiscriminator, ErrAuth}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParseReceived(b, false)
		if err != nil {
			for _, r := range reasons {
				if errors.Is(err, r) {
					return
				}
			}
			t.Fatalf("refused for an unknown reason: %v", err)
		}
		switch {
		case p.Version != 1, p.DetectMult == 0, p.Multipoint, p.MyDiscriminator == 0, p.AuthBit,
			p.YourDiscriminator == 0 && p.State != Down && p.State != AdminDown,
			len(b) < HeaderLen, int(b[3]) > len(b), b[3] < HeaderLen:
			t.Fatalf("accepted a packet §6.8.6 discards: %+v", p)
		}
	})
}
