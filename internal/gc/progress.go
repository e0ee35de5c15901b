package gc

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// progress counts what a collection has done and prints it, at most once
// an interval, on its own goroutine, which stop ends and waits for.
type progress struct {
	out      io.Writer
	interval time.Duration

	blobsListed, repoFiles                        atomic.Int64
	tagsRead, tagsTotal                           atomic.Int64
	manifestsRead, manifestsTotal                 atomic.Int64
	repos, manifestsMarked, deleted, deletesTotal atomic.Int64

	mu        sync.Mutex
	current   string      // the phase under way
	started   time.Time   // when it started
	phases    []phaseTime // the phases done
	requests0 map[string]float64

	done chan struct{}
	wg   sync.WaitGroup
}

type phaseTime struct {
	name string
	took time.Duration
}

func newProgress(out io.Writer, interval time.Duration) *progress {
	p := &progress{out: out, interval: interval, done: make(chan struct{}), requests0: cosRequests()}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-p.done:
				return
			case <-t.C:
				p.report()
			}
		}
	}()
	return p
}

// phase ends the phase under way and starts name ("" for none).
func (p *progress) phase(name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if p.current != "" {
		p.phases = append(p.phases, phaseTime{p.current, now.Sub(p.started)})
	}
	p.current, p.started = name, now
}

func (p *progress) stop() {
	close(p.done)
	p.wg.Wait()
}

// report prints one progress line: the phase, its counts, its rate and,
// where the total is known, an estimate of the time left.
func (p *progress) report() {
	p.mu.Lock()
	phase, elapsed := p.current, time.Since(p.started)
	p.mu.Unlock()
	var done, total int64
	var what string
	switch phase {
	case "list":
		done, what = p.blobsListed.Load()+p.repoFiles.Load(), "files listed"
	case "read":
		done, total, what = p.tagsRead.Load()+p.manifestsRead.Load(), p.tagsTotal.Load()+p.manifestsTotal.Load(), "tags and manifests read"
	case "mark":
		done, what = p.repos.Load(), "repositories marked"
	case "sweep":
		done, total, what = p.deleted.Load(), p.deletesTotal.Load(), "files deleted"
	default:
		return
	}
	line := fmt.Sprintf("garbage-collect: %s: %d %s", phase, done, what)
	if total > 0 {
		line = fmt.Sprintf("garbage-collect: %s: %d/%d %s", phase, done, total, what)
	}
	rate := float64(done) / elapsed.Seconds()
	line += fmt.Sprintf(", %.0f/s", rate)
	if total > done && rate > 0 {
		line += fmt.Sprintf(", about %s left", (time.Duration(float64(total-done) / rate * float64(time.Second))).Round(time.Second))
	}
	fmt.Fprintln(p.out, line)
}

// summary prints what the collection decided and did, the time of each
// phase and the COS requests it made, by operation.
func (p *progress) summary(res *Result, dryRun bool) {
	verb := "deleted"
	if dryRun {
		verb = "eligible for deletion (dry run)"
	}
	links := 0
	for _, l := range res.LayerLinks {
		links += len(l)
	}
	fmt.Fprintf(p.out, "garbage-collect: %d blobs marked; %d blobs (%s), %d manifests and %d layer links %s; %d blobs kept by --min-age\n",
		len(res.Marked), len(res.Blobs), bytesString(res.BytesFreed), len(res.Manifests), links, verb, len(res.KeptYoung))
	p.mu.Lock()
	var total time.Duration
	var parts []string
	for _, ph := range p.phases {
		total += ph.took
		parts = append(parts, fmt.Sprintf("%s %s", ph.name, ph.took.Round(time.Millisecond)))
	}
	p.mu.Unlock()
	fmt.Fprintf(p.out, "garbage-collect: took %s (%s)\n", total.Round(time.Millisecond), strings.Join(parts, ", "))
	now := cosRequests()
	var ops []string
	sum := 0.0
	for op, n := range now {
		if d := n - p.requests0[op]; d > 0 {
			ops = append(ops, fmt.Sprintf("%s %.0f", op, d))
			sum += d
		}
	}
	if len(ops) > 0 {
		sort.Strings(ops)
		fmt.Fprintf(p.out, "garbage-collect: %.0f COS requests (%s)\n", sum, strings.Join(ops, ", "))
	}
}

// cosRequests reads the cos driver's request counter (Prometheus series
// registry_cos_requests_total) by operation; empty for other drivers.
func cosRequests() map[string]float64 {
	counts := map[string]float64{}
	families, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		return counts
	}
	for _, f := range families {
		if f.GetName() != "registry_cos_requests_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "operation" {
					counts[l.GetValue()] += m.GetCounter().GetValue()
				}
			}
		}
	}
	return counts
}

// bytesString prints n bytes in binary units.
func bytesString(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
