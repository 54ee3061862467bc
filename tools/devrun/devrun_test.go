package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hostkit/hostkit/internal/runtest"
)

// TestMakeRunPipedToTeeStopsOnCtrlC runs `make run 2>&1 | tee run.log` in a
// process group of its own, as a terminal would, on free ports, and presses
// Ctrl-C (SIGINT to the group) once both services are ready. tee dies at
// once, so everything the services log afterwards goes to a closed pipe;
// both must still stop cleanly (exit 0, reported by devrun) and the whole
// pipeline must end.
func TestMakeRunPipedToTeeStopsOnCtrlC(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs both services")
	}
	for _, tool := range []string{"make", "bash", "tee"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s is required in CI: %v", tool, err)
			}
			t.Skipf("%s not installed", tool)
		}
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	report := filepath.Join(dir, "report")
	pingapi, worker, natsAddr := runtest.FreeAddr(t), runtest.FreeAddr(t), runtest.FreeAddr(t)
	cmd := exec.Command("bash", "-c", `make --no-print-directory -C "$1" run "${@:2}" 2>&1 | tee run.log`, "bash", root,
		"NATS_ADDR="+natsAddr,
		"WORKER_FLAGS=--http.addr="+worker+" --nats.embedded.store_dir="+filepath.Join(dir, "nats"),
		"PINGAPI_FLAGS=--http.addr="+pingapi,
		"DEVRUN_FLAGS=-report="+report)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stdout, cmd.Stderr = nil, nil // tee's copy goes nowhere: run.log has it
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	log := func() string { b, _ := os.ReadFile(filepath.Join(dir, "run.log")); return string(b) }

	for _, addr := range []string{worker, pingapi} {
		runtest.WaitOK(t, "http://"+addr+"/healthz/ready", 3*time.Minute, exited, log)
	}
	for _, prefix := range []string{"\nworker  | ", "\npingapi | "} {
		if !strings.Contains(log(), prefix) {
			t.Errorf("run.log has no line prefixed %q:\n%s", prefix[1:], log())
		}
	}
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("make run | tee did not end within 30s of Ctrl-C:\n%s", log())
	}
	// devrun writes its report after both services exited; make, killed by
	// the same SIGINT, waits for it.
	got, err := os.ReadFile(report)
	if err != nil {
		t.Fatalf("devrun wrote no report: %v\n%s", err, log())
	}
	if want := "worker 0\npingapi 0\n"; string(got) != want {
		t.Errorf("exit statuses after Ctrl-C with tee gone:\n%s\nwant\n%s\nrun.log:\n%s", got, want, log())
	}
	// Nothing of the group is left.
	if err := syscall.Kill(-cmd.Process.Pid, 0); err == nil {
		t.Errorf("processes of the make run group still run after it ended")
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{nil, {"-wait"}, {"  "}} {
		var stderr bytes.Buffer
		if code := run(args, nil, &bytes.Buffer{}, &stderr); code != 2 {
			t.Errorf("devrun %q = %d, want 2 (%s)", args, code, stderr.String())
		}
	}
}

// TestFirstFailureStopsTheOthers runs a service that fails at once next to
// one that would run for a minute: devrun must stop the second and exit
// with the first's status.
func TestFirstFailureStopsTheOthers(t *testing.T) {
	if testing.Short() {
		t.Skip("runs processes")
	}
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	dir := t.TempDir()
	fail := filepath.Join(dir, "fail")
	if err := os.WriteFile(fail, []byte("#!"+sh+"\necho broken >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	var out, errOut runtest.Buffer
	start := time.Now()
	code := run([]string{"sleep 60", fail}, make(chan os.Signal), &out, &errOut)
	if code != 3 {
		t.Errorf("exit status = %d, want 3\n%s", code, errOut.String())
	}
	if took := time.Since(start); took > 30*time.Second {
		t.Errorf("took %s: sleep was not stopped", took)
	}
	if !strings.Contains(errOut.String(), "fail  | broken\n") {
		t.Errorf("stderr lacks the prefixed line %q:\n%s", "fail  | broken", errOut.String())
	}
}
