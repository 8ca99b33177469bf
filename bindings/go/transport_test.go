package bill

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The Transport signs requests, and recovers once when BILL expired the
// session behind libbill's back.
func TestTransportRecoversFromServerExpiry(t *testing.T) {
	s := mustLogin(t, demoOptions(V3))
	client := s.Client()
	resp, err := client.Get(emu.V3Base + "/v3/vendors")
	if err != nil {
		t.Fatal(err)
	}
	if body := readAll(t, resp); resp.StatusCode != 200 || !strings.Contains(body, "vendors") {
		t.Fatalf("GET through the Transport: %d %s", resp.StatusCode, body)
	}

	old := mustID(t, s)
	before := emu.stats(t)
	emu.expire(t, old)
	req, _ := http.NewRequest("POST", emu.V3Base+"/v3/vendors", strings.NewReader(`{"name":"Acme"}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err = client.Do(req)
	if err != nil {
		t.Fatalf("POST after a server-side expiry: %v", err)
	}
	if body := readAll(t, resp); resp.StatusCode != 200 || !strings.Contains(body, "Acme") {
		t.Fatalf("POST after a server-side expiry: %d %s", resp.StatusCode, body)
	}
	after := emu.stats(t)
	if got := after.Logins - before.Logins; got != 1 {
		t.Fatalf("%d sign-ins to recover, want 1", got)
	}
	if got := after.Rejected1109 - before.Rejected1109; got != 1 {
		t.Fatalf("%d requests refused with BDC_1109, want 1", got)
	}
	if now := mustID(t, s); now == old {
		t.Fatal("the id did not change")
	}
	if len(req.Header["sessionId"]) > 0 || len(req.Header["devKey"]) > 0 {
		t.Fatal("the Transport wrote the secrets into the caller's request")
	}
}

// A body that cannot be replayed is not resent: the 401 comes back.
func TestTransportDoesNotReplayOneShotBodies(t *testing.T) {
	s := mustLogin(t, demoOptions(V3))
	emu.expire(t, mustID(t, s))
	body := io.NopCloser(bytes.NewReader([]byte(`{"name":"Once"}`))) // no GetBody
	req, _ := http.NewRequest("POST", emu.V3Base+"/v3/vendors", body)
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, resp); resp.StatusCode != 401 || !strings.Contains(got, "BDC_1109") {
		t.Fatalf("one-shot body after expiry: %d %s", resp.StatusCode, got)
	}
	// The next request renews and works.
	resp, err = s.Client().Get(emu.V3Base + "/v3/vendors")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET after the refused one: %v %v", resp, err)
	}
	resp.Body.Close()
}

// Requests to another origin get no secrets.
func TestQuickTransportSignsOnlyBILL(t *testing.T) {
	var got http.Header
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Clone()
	}))
	defer other.Close()
	s := mustLogin(t, demoOptions(V3))
	resp, err := s.Client().Get(other.URL + "/v3/vendors")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for name := range got {
		if strings.EqualFold(name, "devKey") || strings.EqualFold(name, "sessionId") {
			t.Fatalf("a request to another origin carried %s", name)
		}
	}
	h, err := s.AuthHeaders()
	if err != nil || len(h["sessionId"]) != 1 || h["sessionId"][0] != mustID(t, s) || len(h["devKey"]) != 1 || h["devKey"][0] != demoDevKey {
		t.Fatalf("AuthHeaders() = %d headers, %v", len(h), err)
	}
	var nilTransport Transport
	if _, err := nilTransport.RoundTrip(httptest.NewRequest("GET", emu.V3Base+"/v3/vendors", nil)); !errors.Is(err, ErrInvalidArg) {
		t.Fatalf("a Transport without a Session: %v", err)
	}
}

// A context deadline on the request bounds a slow call through the Transport.
func TestQuickTransportHonoursContext(t *testing.T) {
	e, o := slowEmulator(t)
	s := mustLogin(t, o)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", e.V3Base+"/v3/slow", bytes.NewReader(slowBody()))
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	_, err := s.Client().Do(req)
	if took := time.Since(start); took > interrupts || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("slow request with a deadline: %v after %v", err, took)
	}
}

// Requests refused together after an expiry share their sign-ins.
func TestTransportConcurrentRecovery(t *testing.T) {
	s := mustLogin(t, demoOptions(V3))
	client := s.Client()
	before := emu.stats(t)
	emu.expire(t, mustID(t, s))
	const n = 8
	errs := make(chan error, n)
	for range n {
		go func() {
			resp, err := client.Get(emu.V3Base + "/v3/vendors")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode != 200 {
					err = fmt.Errorf("HTTP %d", resp.StatusCode)
				}
			}
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatalf("a request after the expiry: %v", err)
		}
	}
	if got := emu.stats(t).Logins - before.Logins; got < 1 || got >= n {
		t.Fatalf("%d sign-ins for %d refused requests", got, n)
	}
}

// Uses through the Transport count: a session that is used all the time
// never idles out in libbill. In Lazy mode nothing renews in the background,
// so without the recorded uses libbill would stop handing out the id after
// about 2.6 s and the Transport would have to sign in again.
func TestTransportRecordsUse(t *testing.T) {
	o := timedOptions(Lazy, 3*time.Second, time.Second)
	s := mustLogin(t, o)
	client := s.Client()
	before := emu.stats(t).Logins
	end := time.Now().Add(4500 * time.Millisecond)
	for n := 0; time.Now().Before(end); n++ {
		resp, err := client.Get(emu.V3Base + "/v3/vendors")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("request %d: HTTP %d", n, resp.StatusCode)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got := emu.stats(t).Logins - before; got != 0 {
		t.Fatalf("%d sign-ins while the session was in use", got)
	}
}
