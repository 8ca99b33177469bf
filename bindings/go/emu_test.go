package bill

// Test harness: one emulator per test binary, started by TestMain.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// The emulator's seeded account, as `bill-emulator --print-demo-account`
// prints it (set by TestMain; the emulator defines it, not these tests).
var demoUser, demoPass, demoOrg, demoDevKey string

// loadDemoAccount reads the demo account from the emulator itself.
func loadDemoAccount() error {
	out, err := exec.Command(emulatorPath(), "--print-demo-account").Output()
	if err != nil {
		return fmt.Errorf("%s --print-demo-account (run `make build`): %w", emulatorPath(), err)
	}
	var a struct {
		UserName string `json:"userName"`
		Password string `json:"password"`
		OrgID    string `json:"orgId"`
		DevKey   string `json:"devKey"`
	}
	if err := json.Unmarshal(out, &a); err != nil {
		return fmt.Errorf("demo account %q: %w", out, err)
	}
	demoUser, demoPass, demoOrg, demoDevKey = a.UserName, a.Password, a.OrgID, a.DevKey
	return nil
}

type emuInfo struct {
	Port        int     `json:"port"`
	ControlPort int     `json:"control_port"`
	Scheme      string  `json:"scheme"`
	V2Base      string  `json:"v2_base"`
	V3Base      string  `json:"v3_base"`
	Control     string  `json:"control"`
	CAFile      *string `json:"ca_file"`
	WrongCAFile *string `json:"wrong_ca_file"`
}

type emulator struct {
	emuInfo
	cmd   *exec.Cmd
	stdin io.WriteCloser
}

var emu *emulator

func emulatorPath() string {
	if p := os.Getenv("EMULATOR"); p != "" {
		return p
	}
	p, _ := filepath.Abs("../../target/debug/bill-emulator")
	return p
}

// startEmulator runs the emulator with --exit-on-stdin-eof, so it also
// stops if this process dies, and keeps draining its stdout.
func startEmulator(args ...string) (*emulator, error) {
	base := []string{"--port", "0", "--control-port", "0", "--exit-on-stdin-eof"}
	cmd := exec.Command(emulatorPath(), append(base, args...)...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s (run `make build`): %w", cmd.Path, err)
	}
	lines := make(chan string, 1)
	go func() {
		r := bufio.NewReader(stdout)
		line, _ := r.ReadString('\n')
		lines <- line
		_, _ = io.Copy(io.Discard, r)
	}()
	e := &emulator{cmd: cmd, stdin: stdin}
	select {
	case line := <-lines:
		if err := json.Unmarshal([]byte(line), &e.emuInfo); err != nil {
			e.stop()
			return nil, fmt.Errorf("emulator's first line %q: %w", line, err)
		}
	case <-time.After(30 * time.Second):
		e.stop()
		return nil, fmt.Errorf("emulator did not start")
	}
	return e, nil
}

func (e *emulator) stop() {
	_ = e.stdin.Close()
	done := make(chan struct{})
	go func() { _ = e.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = e.cmd.Process.Kill()
		<-done
	}
}

func TestMain(m *testing.M) {
	if os.Getenv(fleetChildEnv) != "" {
		// A fleet child (fleet_test.go) signs in to its parent's emulator.
		os.Exit(m.Run())
	}
	err := loadDemoAccount()
	if err == nil {
		emu, err = startEmulator("--idle-timeout-ms", "3000")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bill tests:", err)
		os.Exit(1)
	}
	code := m.Run()
	emu.stop()
	os.Exit(code)
}

var control = &http.Client{Timeout: 10 * time.Second}

// post sends a control request and decodes the JSON reply into out (if not nil).
func (e *emulator) post(t testing.TB, path string, body, out any) {
	t.Helper()
	b, _ := json.Marshal(body)
	resp, err := control.Post(e.Control+path, "application/json", bytes.NewReader(b))
	e.decode(t, path, resp, err, out)
}

func (e *emulator) get(t testing.TB, path string, out any) {
	t.Helper()
	resp, err := control.Get(e.Control + path)
	e.decode(t, path, resp, err, out)
}

func (e *emulator) decode(t testing.TB, path string, resp *http.Response, err error, out any) {
	t.Helper()
	if err != nil {
		t.Fatalf("control %s: %v", path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("control %s: HTTP %d: %s", path, resp.StatusCode, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("control %s: %v in %s", path, err, data)
		}
	}
}

type emuStats struct {
	Requests       int64            `json:"requests"`
	Logins         int64            `json:"logins"`
	Calls          int64            `json:"calls"`
	Logouts        int64            `json:"logouts"`
	Rejected1109   int64            `json:"rejected_1109"`
	MaxInFlight    int64            `json:"max_in_flight"`
	SessionsIssued []string         `json:"sessions_issued"`
	Violations     []map[string]any `json:"violations"`
}

func (e *emulator) stats(t testing.TB) emuStats {
	t.Helper()
	var s emuStats
	e.get(t, "/_emu/stats", &s)
	return s
}

type emuSession struct {
	Known     bool    `json:"known"`
	Valid     bool    `json:"valid"`
	EndReason *string `json:"end_reason"`
	Trusted   bool    `json:"trusted"`
}

func (e *emulator) session(t testing.TB, id string) emuSession {
	t.Helper()
	var s emuSession
	e.post(t, "/_emu/session", map[string]string{"sessionId": id}, &s)
	return s
}

func (e *emulator) expire(t testing.TB, id string) {
	t.Helper()
	e.post(t, "/_emu/expire", map[string]string{"sessionId": id}, nil)
}

// fault installs one fault until t ends.
func (e *emulator) fault(t testing.TB, f map[string]any) {
	t.Helper()
	e.post(t, "/_emu/faults", f, nil)
	t.Cleanup(func() { e.post(t, "/_emu/faults", map[string]any{"mode": "none"}, nil) })
}

// demoOptions are options for the seeded account on the shared emulator.
func demoOptions(api API) Options {
	o := Options{
		UserName: []byte(demoUser),
		Password: []byte(demoPass),
		DevKey:   []byte(demoDevKey),
		OrgID:    demoOrg,
		API:      api,
		BaseURL:  emu.V3Base,
	}
	if api == V2 {
		o.BaseURL = emu.V2Base
	}
	return o
}

func mustLogin(t testing.TB, o Options) *Session {
	t.Helper()
	s, err := Login(o)
	if err != nil {
		t.Fatalf("Login: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func mustID(t testing.TB, s *Session) string {
	t.Helper()
	id, err := s.ID()
	if err != nil || id == "" {
		t.Fatalf("ID() = %q, %v", id, err)
	}
	return id
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// wantErr checks that err is an *Error matching sentinel.
func wantErr(t testing.TB, err error, sentinel *Error) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not a *bill.Error; want %v", err, err, sentinel.Status)
	}
	if !errors.Is(err, sentinel) {
		t.Fatalf("error %v has status %d; want %d (%v)", err, e.Status, sentinel.Status, sentinel.Status)
	}
	return e
}
