package bill

// Fleet mode (Options.SharedStore) against a real redis-server: two OS
// processes, this test binary run again as TestFleetChild, share one sign-in.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fleetChildEnv makes the test binary a fleet child: TestMain starts no
// emulator and TestFleetChild signs in with the account in the BILL_* variables.
const fleetChildEnv = "BILL_GO_FLEET_CHILD"

// fleetMark starts the lines a child reports on stdout, which the test
// framework shares.
const fleetMark = "@@fleet "

// redisServer is a redis-server on a free loopback port, without persistence.
type redisServer struct {
	cmd  *exec.Cmd
	port int
}

// startRedis starts redis-server, or skips the test when it is not on PATH.
// It is stopped by pid when t ends.
func startRedis(t *testing.T) *redisServer {
	t.Helper()
	path, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server is not on PATH: fleet mode tests need a real Redis (Debian: apt-get install redis-server)")
	}
	dir := t.TempDir()
	var lastErr error
	// Another process may take the free port before redis-server binds it: try a few.
	for range 5 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		cmd := exec.Command(path, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "",
			"--appendonly", "no", "--dir", dir, "--daemonize", "no",
			"--logfile", filepath.Join(dir, "redis.log"))
		if err := cmd.Start(); err != nil {
			t.Fatalf("start redis-server: %v", err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		r := &redisServer{cmd: cmd, port: port}
		if lastErr = r.waitPing(exited, 20*time.Second); lastErr == nil {
			t.Cleanup(func() {
				_ = cmd.Process.Kill()
				<-exited
			})
			return r
		}
		_ = cmd.Process.Kill()
		<-exited
	}
	log, _ := os.ReadFile(filepath.Join(dir, "redis.log"))
	t.Fatalf("redis-server did not start: %v\n%s", lastErr, log)
	return nil
}

// waitPing waits until our redis-server answers PING on its port.
func (r *redisServer) waitPing(exited <-chan struct{}, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return errors.New("redis-server exited (port taken?)")
		default:
		}
		if c, err := net.DialTimeout("tcp", r.addr(), time.Second); err == nil {
			_ = c.SetDeadline(time.Now().Add(time.Second))
			_, _ = c.Write([]byte("PING\r\n"))
			line, _ := bufio.NewReader(c).ReadString('\n')
			_ = c.Close()
			if strings.HasPrefix(line, "+PONG") {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return errors.New("no PONG within " + timeout.String())
}

func (r *redisServer) addr() string { return "127.0.0.1:" + strconv.Itoa(r.port) }

func (r *redisServer) url() string { return "redis://" + r.addr() + "/0" }

// TestFleetChild is the body of the child processes of
// TestFleetTwoProcessesShareOneSignIn: it signs in with the account and
// store the parent put in its environment, reports its session id, and holds
// the session until its stdin closes.
func TestFleetChild(t *testing.T) {
	if os.Getenv(fleetChildEnv) == "" {
		t.Skip("runs only as a child process of TestFleetTwoProcessesShareOneSignIn")
	}
	s, err := Login(Options{
		UserName:       []byte(os.Getenv("BILL_USER")),
		Password:       []byte(os.Getenv("BILL_PASSWORD")),
		DevKey:         []byte(os.Getenv("BILL_DEV_KEY")),
		OrgID:          os.Getenv("BILL_ORG_ID"),
		API:            V3,
		BaseURL:        os.Getenv("BILL_BASE_URL"),
		SharedStore:    []byte(os.Getenv("BILL_SHARED_STORE")),
		StoreKeyPrefix: os.Getenv("BILL_STORE_KEY_PREFIX"),
		StoreTimeout:   5 * time.Second, // generous for a busy machine; the default is 250 ms
		OnEvent: func(ev Event) {
			if ev.Kind == EventStoreDown {
				fmt.Printf("\n%sSTORE-DOWN %s\n", fleetMark, ev.Detail)
			}
		},
	})
	if err != nil {
		fmt.Printf("\n%sERR %v\n", fleetMark, err)
		t.Fatalf("Login: %v", err)
	}
	defer s.Close()
	id, err := s.ID()
	if err != nil {
		t.Fatalf("ID: %v", err)
	}
	fmt.Printf("\n%sID %s\n", fleetMark, id)
	_, _ = io.Copy(io.Discard, os.Stdin)
}

// fleetChild is one running child and what it reported.
type fleetChild struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	reports chan string
	mu      sync.Mutex
	output  []string
	done    chan struct{}
}

func startFleetChild(t *testing.T, env []string) *fleetChild {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestFleetChild$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start child %s: %v", os.Args[0], err)
	}
	c := &fleetChild{cmd: cmd, stdin: stdin, reports: make(chan string, 16), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			c.mu.Lock()
			c.output = append(c.output, line)
			c.mu.Unlock()
			if r, ok := strings.CutPrefix(line, fleetMark); ok {
				c.reports <- r
			}
		}
	}()
	t.Cleanup(func() {
		_ = c.stdin.Close()
		_ = c.cmd.Process.Kill()
		<-c.done
		_ = c.cmd.Wait()
	})
	return c
}

func (c *fleetChild) said() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.output, "\n")
}

// id waits for the child's ID report; any other report fails the test.
func (c *fleetChild) id(t *testing.T) string {
	t.Helper()
	timeout := time.After(60 * time.Second)
	for {
		select {
		case r := <-c.reports:
			if id, ok := strings.CutPrefix(r, "ID "); ok {
				return id
			}
			t.Fatalf("child reported %q; its output:\n%s", r, c.said())
		case <-c.done:
			t.Fatalf("child exited without reporting an id; its output:\n%s", c.said())
		case <-timeout:
			t.Fatalf("child reported no id within 60 s; its output:\n%s", c.said())
		}
	}
}

// finish closes the child's stdin and waits for it to pass.
func (c *fleetChild) finish(t *testing.T) {
	t.Helper()
	_ = c.stdin.Close()
	<-c.done
	if err := c.cmd.Wait(); err != nil {
		t.Errorf("child failed: %v; its output:\n%s", err, c.said())
	}
	for {
		select {
		case r := <-c.reports:
			if strings.HasPrefix(r, "STORE-DOWN") {
				t.Errorf("child lost the store: %s", r)
			}
		default:
			return
		}
	}
}

// Two OS processes with the same identity and the same Redis sign in once:
// the emulator sees one sign-in and both processes hold the same id.
func TestFleetTwoProcessesShareOneSignIn(t *testing.T) {
	redis := startRedis(t)
	// A dedicated emulator, so that no other test's sign-ins are counted.
	e, err := startEmulator("--idle-timeout-ms", "60000")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.stop)
	// Slow sign-ins, so that the second process starts while the first one's is in flight.
	e.fault(t, map[string]any{"mode": "delay", "target": "login", "delay_ms": 500})
	env := []string{
		fleetChildEnv + "=1",
		"BILL_USER=" + demoUser,
		"BILL_PASSWORD=" + demoPass,
		"BILL_DEV_KEY=" + demoDevKey,
		"BILL_ORG_ID=" + demoOrg,
		"BILL_BASE_URL=" + e.V3Base,
		"BILL_SHARED_STORE=" + redis.url(),
		"BILL_STORE_KEY_PREFIX=billgo-test:",
	}
	a := startFleetChild(t, env)
	b := startFleetChild(t, env)
	idA, idB := a.id(t), b.id(t)
	if idA == "" || idA != idB {
		t.Errorf("the two processes hold different ids (%d and %d bytes long, equal: %v)", len(idA), len(idB), idA == idB)
	}
	if st := e.stats(t); st.Logins != 1 {
		t.Errorf("the emulator counted %d sign-ins; want 1 for the fleet", st.Logins)
	}
	a.finish(t)
	b.finish(t)
}

// A malformed store URL fails Login with ErrInvalidArg naming the field, and
// the error text holds no part of the URL's password.
func TestQuickSharedStoreMalformedURL(t *testing.T) {
	const password = "s3cr3t-pw"
	o := demoOptions(V3)
	o.SharedStore = []byte("redis://:" + password + "@host:notaport")
	s, err := Login(o)
	if s != nil {
		s.Close()
		t.Fatal("Login accepted a malformed store URL")
	}
	e := wantErr(t, err, ErrInvalidArg)
	if !strings.HasPrefix(e.Message, "Options.SharedStore: ") {
		t.Errorf("message %q does not name Options.SharedStore", e.Message)
	}
	for _, part := range []string{password, "s3cr3t"} {
		if strings.Contains(err.Error(), part) {
			t.Errorf("error text %q contains %q from the URL's password", err.Error(), part)
		}
	}
}
