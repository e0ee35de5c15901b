// Command benchdoc turns the output of the registry-cos benchmarks into the
// figures section of docs/benchmarks.md, so that re-running the benchmarks
// updates the page:
//
//	go test -run '^$' -bench . -benchtime 1x -timeout 60m -v ./bench/ | tee bench.txt
//	go run ./bench/internal/benchdoc -in bench.txt -doc docs/benchmarks.md
//
// It replaces what lies between the "<!-- figures:begin -->" and
// "<!-- figures:end -->" lines of the page with: the targets of issue 5
// and whether the run met them, every figure of every benchmark, and the
// COS requests by operation. Without -doc it prints the section.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

const (
	beginMarker = "<!-- figures:begin -->"
	endMarker   = "<!-- figures:end -->"
)

// result is one benchmark line: its name (without the -GOMAXPROCS suffix)
// and its metrics by unit.
type result struct {
	name    string
	metrics map[string]float64
	units   []string // in the order of the line
}

// target is a goal of issue 5, checked against one metric.
type target struct {
	text   string
	bench  string
	metric string
	ok     func(v float64) bool
	goal   string
}

var targets = []target{
	{"Unthrottled 1 GiB push vs filesystem", "BenchmarkBlob1GiB/unthrottled", "push-ratio", func(v float64) bool { return v >= 0.7 }, "≥ 0.7×"},
	{"Unthrottled 1 GiB pull with redirects vs filesystem", "BenchmarkBlob1GiB/unthrottled", "pull-redirect-ratio", func(v float64) bool { return v >= 0.9 }, "≥ 0.9×"},
	{"Throttled 1 GiB push vs the 50 MB/s per-connection cap", "BenchmarkBlob1GiB/throttled", "push-x-conn-cap", func(v float64) bool { return v >= 3 }, "≥ 3×"},
	{"32 × 100 MiB pushes: peak Go heap (MiB)", "BenchmarkMemory/pushes=32", "peak-heap-MiB", func(v float64) bool { return v < 200 }, "< 200"},
	{"32 × 100 MiB pushes: peak RSS (MiB)", "BenchmarkMemory/pushes=32", "peak-RSS-MiB", func(v float64) bool { return v < 512 }, "< 512"},
	{"64 vs 32 pushes: peak RSS ratio", "BenchmarkMemory/pushes=64", "RSS-vs-32", func(v float64) bool { return v < 2 }, "< 2×"},
	{"64 vs 32 pushes: peak heap ratio", "BenchmarkMemory/pushes=64", "heap-vs-32", func(v float64) bool { return v < 2 }, "< 2×"},
}

func main() {
	in := flag.String("in", "-", "benchmark output to read (- for standard input)")
	doc := flag.String("doc", "", "markdown page whose figures section to replace (empty: print the section)")
	flag.Parse()

	var r io.Reader = os.Stdin
	if *in != "-" {
		f, err := os.Open(*in)
		if err != nil {
			fail(err)
		}
		defer f.Close()
		r = f
	}
	header, results, err := parse(r)
	if err != nil {
		fail(err)
	}
	if len(results) == 0 {
		fail(fmt.Errorf("%s holds no benchmark results", *in))
	}
	section := render(header, results)
	if *doc == "" {
		fmt.Print(section)
		return
	}
	page, err := os.ReadFile(*doc)
	if err != nil {
		fail(err)
	}
	begin, end := bytes.Index(page, []byte(beginMarker)), bytes.Index(page, []byte(endMarker))
	if begin < 0 || end < begin {
		fail(fmt.Errorf("%s has no %q ... %q section", *doc, beginMarker, endMarker))
	}
	var out bytes.Buffer
	out.Write(page[:begin+len(beginMarker)])
	out.WriteString("\n")
	out.WriteString(section)
	out.Write(page[end:])
	if err := os.WriteFile(*doc, out.Bytes(), 0o644); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "benchdoc:", err)
	os.Exit(1)
}

// procsSuffix is the "-GOMAXPROCS" suffix go test adds to benchmark names.
var procsSuffix = regexp.MustCompile(`-\d+$`)

// parse reads go test -bench output: the goos/goarch/cpu header lines and
// the result lines.
func parse(r io.Reader) (header []string, results []result, err error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		for _, h := range []string{"goos:", "goarch:", "cpu:"} {
			if strings.HasPrefix(line, h) {
				header = append(header, strings.TrimSpace(line))
			}
		}
		if !strings.HasPrefix(line, "Benchmark") {
			continue
		}
		fields := strings.Fields(line)
		// name N value unit value unit ...
		if len(fields) < 4 || len(fields)%2 != 0 {
			continue
		}
		if _, err := strconv.Atoi(fields[1]); err != nil {
			continue
		}
		if procs := procsSuffix.FindString(fields[0]); procs != "" && !slices.Contains(header, "GOMAXPROCS "+procs[1:]) {
			header = append(header, "GOMAXPROCS "+procs[1:])
		}
		res := result{name: procsSuffix.ReplaceAllString(fields[0], ""), metrics: map[string]float64{}}
		for i := 2; i+1 < len(fields); i += 2 {
			v, err := strconv.ParseFloat(fields[i], 64)
			if err != nil {
				continue
			}
			res.metrics[fields[i+1]] = v
			res.units = append(res.units, fields[i+1])
		}
		results = append(results, res)
	}
	return header, results, sc.Err()
}

// requestMetric matches "<prefix>-<Operation>-reqs".
var requestMetric = regexp.MustCompile(`^([a-z]+(?:-[a-z]+)*)-([A-Z][A-Za-z]+)-reqs$`)

// render writes the figures section.
func render(header []string, results []result) string {
	var sb strings.Builder
	byName := map[string]result{}
	for _, r := range results {
		byName[r.name] = r
	}

	fmt.Fprintf(&sb, "\nMachine of the last run: %s.\n\n", strings.Join(header, ", "))

	sb.WriteString("### Targets\n\n| Target | Goal | Measured | Met |\n|---|---|---|---|\n")
	for _, t := range targets {
		r, ok := byName[t.bench]
		v, has := r.metrics[t.metric]
		if !ok || !has {
			fmt.Fprintf(&sb, "| %s | %s | not measured | — |\n", t.text, t.goal)
			continue
		}
		met := "**no**"
		if t.ok(v) {
			met = "yes"
		}
		fmt.Fprintf(&sb, "| %s | %s | %s | %s |\n", t.text, t.goal, format(v), met)
	}

	sb.WriteString("\n### Every figure\n\n| Benchmark | Figure | Value |\n|---|---|---|\n")
	for _, r := range results {
		fmt.Fprintf(&sb, "| %s | wall time (s) | %s |\n", r.name, format(r.metrics["ns/op"]/1e9))
		for _, u := range r.units {
			if u == "ns/op" || requestMetric.MatchString(u) {
				continue
			}
			fmt.Fprintf(&sb, "| %s | %s | %s |\n", r.name, u, format(r.metrics[u]))
		}
	}

	sb.WriteString("\n### COS requests by operation\n\n")
	sb.WriteString("Counted by the emulator; one column per measured step (`pull-redirect`: the registry answers with a presigned URL and the client fetches it from the emulator; `pull-direct`: the registry streams the blob; `dry`: a dry-run garbage collection).\n")
	for _, r := range results {
		steps := map[string]map[string]float64{}
		var stepOrder, ops []string
		for _, u := range r.units {
			m := requestMetric.FindStringSubmatch(u)
			if m == nil {
				continue
			}
			step, op := m[1], m[2]
			if steps[step] == nil {
				steps[step] = map[string]float64{}
				stepOrder = append(stepOrder, step)
			}
			steps[step][op] = r.metrics[u]
			if !slices.Contains(ops, op) {
				ops = append(ops, op)
			}
		}
		if len(ops) == 0 {
			continue
		}
		slices.Sort(ops)
		fmt.Fprintf(&sb, "\n%s:\n\n| Operation |", r.name)
		for _, s := range stepOrder {
			fmt.Fprintf(&sb, " %s |", s)
		}
		sb.WriteString("\n|---|" + strings.Repeat("---:|", len(stepOrder)) + "\n")
		for _, op := range ops {
			fmt.Fprintf(&sb, "| %s |", op)
			for _, s := range stepOrder {
				fmt.Fprintf(&sb, " %s |", format(steps[s][op]))
			}
			sb.WriteString("\n")
		}
		sb.WriteString("| **total** |")
		for _, s := range stepOrder {
			fmt.Fprintf(&sb, " %s |", format(r.metrics[s+"-reqs"]))
		}
		sb.WriteString("\n")
	}
	sb.WriteString("\n")
	return sb.String()
}

// format prints a figure with as many decimals as its size deserves.
func format(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v >= 100 || v == float64(int64(v)):
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}
