package lab

import (
	"fmt"
	"io"
	"time"
)

// progress shows what a command waits for. On a terminal it is one line,
// redrawn with the time waited; elsewhere (a log, a pipe) each new message
// is a line of its own, so nothing is printed twice.
type progress struct {
	w     io.Writer // nil: show nothing
	tty   bool
	start time.Time
	last  string
	drawn bool // the terminal line holds a message
}

func newProgress(w io.Writer, tty bool) *progress {
	return &progress{w: w, tty: tty, start: time.Now()}
}

// update shows msg.
func (p *progress) update(msg string) {
	if p.w == nil {
		return
	}
	if p.tty {
		// \r and "erase to end of line" redraw the line in place.
		fmt.Fprintf(p.w, "\r\033[K%s (%ds)", msg, int(time.Since(p.start).Seconds()))
		p.drawn = true
		return
	}
	if msg != p.last {
		fmt.Fprintln(p.w, msg)
		p.last = msg
	}
}

// end finishes a terminal's line, so what follows starts on a new one.
func (p *progress) end() {
	if p.w != nil && p.drawn {
		fmt.Fprintln(p.w)
		p.drawn = false
	}
}
