// Command benchhttp compares a hostkit binary's HTTP endpoint with a bare
// net/http handler under wrk, the way issue figures are measured: the server
// pinned to one core with taskset, wrk -t1 -c32 pinned to the other, the two
// servers taking turns round after round so that load from elsewhere on the
// machine hits both alike. It prints each round and the medians, and the
// binary's throughput and p99 as ratios of bare's. `make bench-http` runs it
// on pingapi's GET /pingpong/ping with its default configuration, its log
// (access log included) going to a file.
//
// A third server, "floor", is bare plus what the kit's default must do on
// top for every request: one slog JSON access line, written through
// host.AsyncWriter to a file. floor/bare is the most any server that logs
// every request can reach here, and kit/floor what the rest of the kit's
// stack costs.
//
//	benchhttp -bin bin/pingapi -path /pingpong/ping [-rounds 5] [-duration 5s] [-traced] [-base OLDBIN]
//	benchhttp -serve-bare ADDR    (the bare server; benchhttp runs itself so)
//	benchhttp -serve-floor ADDR   (bare with an access line per request on stderr)
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hostkit/hostkit/internal/host"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "benchhttp:", err)
		os.Exit(1)
	}
}

type options struct {
	bin, path, logFile string
	rounds, conns      int
	duration           time.Duration
	serverCPU, loadCPU string
	serveBare          string
	serveFloor         string
	extraArgs          string
	base               string
	traced             bool
}

func run(args []string, out io.Writer) error {
	var o options
	fs := flag.NewFlagSet("benchhttp", flag.ContinueOnError)
	fs.StringVar(&o.bin, "bin", "bin/pingapi", "the hostkit binary to measure")
	fs.StringVar(&o.path, "path", "/pingpong/ping", "the path to load")
	fs.StringVar(&o.logFile, "log", "", "file for the binary's log (default: a temporary file)")
	fs.StringVar(&o.extraArgs, "args", "", "extra arguments for the binary, space-separated")
	fs.IntVar(&o.rounds, "rounds", 5, "rounds; each runs wrk against both servers")
	fs.IntVar(&o.conns, "c", 32, "wrk connections")
	fs.DurationVar(&o.duration, "duration", 5*time.Second, "wrk duration per server per round")
	fs.StringVar(&o.serverCPU, "server-cpu", "0", "CPU list the servers are pinned to")
	fs.StringVar(&o.loadCPU, "load-cpu", "1", "CPU list wrk is pinned to")
	fs.StringVar(&o.base, "base", "", "an earlier build of the binary to compare with (tracing off)")
	fs.BoolVar(&o.traced, "traced", false, "also run the binary with tracing on, always sampled, exporting to a local OTLP receiver")
	fs.StringVar(&o.serveBare, "serve-bare", "", "serve the bare handler on this address and do nothing else")
	fs.StringVar(&o.serveFloor, "serve-floor", "", "serve the bare handler with a JSON access line per request on stderr, on this address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.serveBare != "" {
		return http.ListenAndServe(o.serveBare, bareMux(o.path, nil))
	}
	if o.serveFloor != "" {
		return serveFloor(o.serveFloor, o.path)
	}
	return compare(o, out)
}

// bareMux is the ceiling: net/http answering the same body, no middleware.
// With a logger, it also logs each request's line after answering.
func bareMux(path string, log *slog.Logger) *http.ServeMux {
	mux := http.NewServeMux()
	var seq atomic.Uint64
	mux.HandleFunc("GET "+path, func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "Pong")
		if log != nil {
			// The kit's access line: the same message and attributes.
			log.LogAttrs(r.Context(), slog.LevelInfo, "http request",
				slog.String("request_id", "floor-"+strconv.FormatUint(seq.Add(1), 10)),
				slog.String("method", r.Method), slog.String("path", r.URL.Path),
				slog.Int("status", http.StatusOK), slog.Duration("duration", time.Since(start)))
		}
	})
	return mux
}

// serveFloor serves bareMux with an access log as the kit's default writes
// it: JSON on stderr (a file here) through host.AsyncWriter, flushed on
// SIGTERM.
func serveFloor(addr, path string) error {
	aw := host.NewAsyncWriter(os.Stderr, host.DefaultLogBuffer)
	log := slog.New(slog.NewJSONHandler(aw, nil)).With("app", "floor")
	srv := &http.Server{Addr: addr, Handler: bareMux(path, log)}
	errs := make(chan error, 1)
	go func() { errs <- srv.ListenAndServe() }()
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	select {
	case err := <-errs:
		return err
	case <-term:
	}
	_ = srv.Close()
	return aw.Close(context.Background())
}

// result is one wrk run.
type result struct {
	rps float64
	p99 time.Duration
}

// target is one server under load and its results.
type target struct {
	name    string
	addr    string
	results []result
}

func compare(o options, out io.Writer) error {
	for _, tool := range []string{"wrk", "taskset"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found (make bench-http installs it with apt-get)", tool)
		}
	}
	if o.logFile == "" {
		f, err := os.CreateTemp("", "benchhttp-*.log")
		if err != nil {
			return err
		}
		f.Close()
		o.logFile = f.Name()
		defer os.Remove(o.logFile)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	targets := []*target{{name: "bare", addr: freeAddr()}}
	bare, err := startPinned(o.serverCPU, io.Discard, nil, self, "-serve-bare", targets[0].addr, "-path", o.path)
	if err != nil {
		return err
	}
	defer stop(bare)
	floorLog, err := os.CreateTemp("", "benchhttp-floor-*.log")
	if err != nil {
		return err
	}
	defer os.Remove(floorLog.Name())
	defer floorLog.Close()
	targets = append(targets, &target{name: "floor", addr: freeAddr()})
	floor, err := startPinned(o.serverCPU, floorLog, nil, self, "-serve-floor", targets[1].addr, "-path", o.path)
	if err != nil {
		return err
	}
	defer stop(floor)
	logf, err := os.OpenFile(o.logFile, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()

	// The binary as configured by default: no OTEL_* set, tracing off.
	plain := otelFree(os.Environ())
	kits := []struct {
		name, bin string
		env       []string
		log       io.Writer
	}{{"kit", o.bin, plain, logf}}
	if o.base != "" {
		kits = append(kits, struct {
			name, bin string
			env       []string
			log       io.Writer
		}{"base", o.base, plain, nil})
	}
	if o.traced {
		rcv, err := startReceiver()
		if err != nil {
			return err
		}
		defer rcv.Close()
		kits = append(kits, struct {
			name, bin string
			env       []string
			log       io.Writer
		}{"traced", o.bin, append(plain, "OTEL_EXPORTER_OTLP_ENDPOINT=http://"+rcv.Addr().String(),
			"OTEL_TRACES_SAMPLER=always_on"), nil})
	}
	for _, k := range kits {
		if k.log == nil {
			// Every kit logs to a file of its own, as the default one does.
			f, err := os.CreateTemp("", "benchhttp-"+k.name+"-*.log")
			if err != nil {
				return err
			}
			defer os.Remove(f.Name())
			defer f.Close()
			k.log = f
		}
		t := &target{name: k.name, addr: freeAddr()}
		args := append([]string{k.bin, "--http.addr=" + t.addr, "--log.format=json"}, strings.Fields(o.extraArgs)...)
		cmd, err := startPinned(o.serverCPU, k.log, k.env, args...)
		if err != nil {
			return err
		}
		defer stop(cmd)
		targets = append(targets, t)
	}
	for _, t := range targets {
		if err := waitListening(t.addr); err != nil {
			return err
		}
	}

	fmt.Fprintf(out, "servers on CPU %s, wrk -t1 -c%d -d%s on CPU %s; kit = %s, its log to %s\n",
		o.serverCPU, o.conns, o.duration, o.loadCPU, o.bin, o.logFile)
	for i := range o.rounds {
		// Rotate the order, so no server always follows the same one.
		for j := range targets {
			t := targets[(i+j)%len(targets)]
			r, err := load(o, "http://"+t.addr+o.path)
			if err != nil {
				return err
			}
			t.results = append(t.results, r)
		}
		fmt.Fprintf(out, "round %d:", i+1)
		for _, t := range targets {
			fmt.Fprintf(out, "  %s %6.0f req/s p99 %-8s", t.name, t.results[i].rps, t.results[i].p99)
		}
		fmt.Fprintln(out)
	}
	byName := map[string]*target{}
	for _, t := range targets {
		byName[t.name] = t
		m := median(t.results)
		fmt.Fprintf(out, "median %-6s %6.0f req/s  p99 %s\n", t.name, m.rps, m.p99)
	}
	ratio(out, byName["kit"], byName["bare"], "default config vs bare net/http")
	ratio(out, byName["floor"], byName["bare"], "bare + a slog JSON access line per request to a file vs bare: the most a server logging every request reaches")
	ratio(out, byName["kit"], byName["floor"], "default config vs that floor: the rest of the stack")
	ratio(out, byName["kit"], byName["base"], "this build vs base build (tracing off)")
	ratio(out, byName["traced"], byName["kit"], "tracing on (always sampled, local OTLP receiver) vs off")
	lines, err := countLines(o.logFile)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "kit log lines written: %d (wrk requests to kit: see the rounds)\n", lines)
	return nil
}

// ratio prints a/b as the median of the per-round ratios (each round runs
// both, so a noisy moment affects both), their range, and the p99 ratio of
// the medians.
func ratio(out io.Writer, a, b *target, what string) {
	if a == nil || b == nil {
		return
	}
	rs := make([]float64, len(a.results))
	for i := range rs {
		rs[i] = a.results[i].rps / b.results[i].rps
	}
	ma, mb := median(a.results), median(b.results)
	fmt.Fprintf(out, "%s/%s throughput %.2f (rounds %.2f–%.2f), p99 %.2f×  — %s\n",
		a.name, b.name, medianOf(rs), slices.Min(rs), slices.Max(rs), float64(ma.p99)/float64(mb.p99), what)
}

// otelFree drops OTEL_* variables, so "tracing off" is what it says.
func otelFree(env []string) []string {
	return slices.DeleteFunc(slices.Clone(env), func(kv string) bool { return strings.HasPrefix(kv, "OTEL_") })
}

// startReceiver accepts OTLP/HTTP trace exports and discards them: an empty
// body is the protobuf encoding of an empty ExportTraceServiceResponse.
func startReceiver() (net.Listener, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	return ln, nil
}

func startPinned(cpu string, stderr io.Writer, env []string, args ...string) (*exec.Cmd, error) {
	cmd := exec.Command("taskset", append([]string{"-c", cpu}, args...)...)
	cmd.Env = env
	cmd.Stderr = stderr
	cmd.Stdout = stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", args[0], err)
	}
	return cmd, nil
}

// stop asks for a graceful stop, so the binary flushes its log.
func stop(cmd *exec.Cmd) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func waitListening(addr string) error {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("nothing listens on %s", addr)
}

var (
	rpsRe = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	p99Re = regexp.MustCompile(`\n\s+99%\s+([0-9.]+)(us|ms|s)\b`)
	errRe = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)|Socket errors: .*`)
)

func load(o options, url string) (result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), o.duration+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "taskset", "-c", o.loadCPU, "wrk", "-t1", "-c"+strconv.Itoa(o.conns),
		"-d"+o.duration.String(), "--latency", url)
	raw, err := cmd.CombinedOutput()
	if err != nil {
		return result{}, fmt.Errorf("wrk: %w\n%s", err, raw)
	}
	s := string(raw)
	if m := errRe.FindString(s); m != "" {
		return result{}, fmt.Errorf("wrk against %s: %s\n%s", url, m, s)
	}
	rm, pm := rpsRe.FindStringSubmatch(s), p99Re.FindStringSubmatch(s)
	if rm == nil || pm == nil {
		return result{}, errors.New("cannot read wrk's output:\n" + s)
	}
	rps, _ := strconv.ParseFloat(rm[1], 64)
	v, _ := strconv.ParseFloat(pm[1], 64)
	unit := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second}[pm[2]]
	return result{rps: rps, p99: time.Duration(v * float64(unit)).Round(time.Microsecond)}, nil
}

func median(rs []result) result {
	rps := make([]float64, len(rs))
	p99 := make([]float64, len(rs))
	for i, r := range rs {
		rps[i], p99[i] = r.rps, float64(r.p99)
	}
	return result{rps: medianOf(rps), p99: time.Duration(medianOf(p99))}
}

func medianOf(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func countLines(path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		n++
	}
	return n, sc.Err()
}
