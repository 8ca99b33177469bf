// Command quickstart signs in to BILL with libbill's Go binding, prints a
// masked session id, makes one call (on v3 also through an http.Client with
// bill.Transport) and signs out.
//
// Settings come from the environment:
//
//	BILL_USER, BILL_PASSWORD, BILL_ORG_ID, BILL_DEV_KEY  (required)
//	BILL_API=2|3 (default 3), BILL_BASE_URL, BILL_SANDBOX=1, BILL_CA_FILE
//
// `make test-go` runs it against the local BILL emulator.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	bill "github.com/libbill/libbill/bindings/go"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

func run() error {
	for _, v := range []string{"BILL_USER", "BILL_PASSWORD", "BILL_ORG_ID", "BILL_DEV_KEY"} {
		if os.Getenv(v) == "" {
			return fmt.Errorf("set %s", v)
		}
	}
	api := bill.V3
	if os.Getenv("BILL_API") == "2" {
		api = bill.V2
	}
	opts := bill.Options{
		UserName: []byte(os.Getenv("BILL_USER")),
		Password: []byte(os.Getenv("BILL_PASSWORD")),
		DevKey:   []byte(os.Getenv("BILL_DEV_KEY")),
		OrgID:    os.Getenv("BILL_ORG_ID"),
		API:      api,
		BaseURL:  os.Getenv("BILL_BASE_URL"),
		CAFile:   os.Getenv("BILL_CA_FILE"),
		OnEvent: func(ev bill.Event) {
			if ev.Status != bill.StatusOK {
				fmt.Printf("  [event] %v (%v): %s\n", ev.Kind, ev.Status, ev.Detail)
			} else {
				fmt.Printf("  [event] %v\n", ev.Kind)
			}
		},
	}
	if os.Getenv("BILL_SANDBOX") == "1" {
		opts.Environment = bill.Sandbox
	}
	fmt.Printf("libbill %s, BILL API v%d\n", bill.Version(), api)

	s, err := bill.Login(opts)
	// Login copied the secrets; our copies can go now.
	clear(opts.UserName)
	clear(opts.Password)
	clear(opts.DevKey)
	if err != nil {
		var be *bill.Error
		if errors.As(err, &be) && be.RetryAfter > 0 {
			return fmt.Errorf("sign-in: %w (retry in %v)", err, be.RetryAfter)
		}
		return fmt.Errorf("sign-in: %w", err)
	}
	defer s.Close()

	id, err := s.IDBytes()
	if err != nil {
		return fmt.Errorf("session id: %w", err)
	}
	fmt.Printf("signed in; session id %s\n", mask(id))
	clear(id) // the id is a secret

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var resp *bill.Response
	if api == bill.V2 {
		resp, err = s.Call(ctx, "POST", "List/Vendor", []byte("{}"))
	} else {
		resp, err = s.Call(ctx, "GET", "vendors", nil)
	}
	if err != nil {
		return fmt.Errorf("call: %w", err)
	}
	fmt.Printf("listed vendors: HTTP %d, %d bytes\n", resp.HTTPStatus, len(resp.Body))

	if api == bill.V3 {
		if err := viaHTTPClient(ctx, s, opts); err != nil {
			return err
		}
	}

	if err := s.Logout(); err != nil {
		return fmt.Errorf("logout: %w", err)
	}
	fmt.Println("signed out")
	return nil
}

// mask shows only the first 4 characters of a session id.
// viaHTTPClient makes the same call with net/http: bill.Transport adds the
// devKey and sessionId headers and renews on BDC_1109.
func viaHTTPClient(ctx context.Context, s *bill.Session, opts bill.Options) error {
	base := opts.BaseURL
	switch {
	case base != "":
	case opts.Environment == bill.Sandbox:
		base = "https://gateway.stage.bill.com/connect"
	default:
		base = "https://gateway.prod.bill.com/connect"
	}
	client := s.Client()
	if opts.CAFile != "" { // trust the same certificates as libbill does
		pem, err := os.ReadFile(opts.CAFile)
		if err != nil {
			return err
		}
		roots := x509.NewCertPool()
		roots.AppendCertsFromPEM(pem)
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.TLSClientConfig = &tls.Config{RootCAs: roots}
		client = &http.Client{Transport: &bill.Transport{Session: s, Base: t}}
	}
	req, err := http.NewRequestWithContext(ctx, "GET", base+"/v3/vendors", nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("http.Client call: %w", err)
	}
	defer resp.Body.Close()
	n, _ := io.Copy(io.Discard, resp.Body)
	fmt.Printf("the same through http.Client: HTTP %d, %d bytes\n", resp.StatusCode, n)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("http.Client call: HTTP %d", resp.StatusCode)
	}
	return nil
}

func mask(id []byte) string {
	if len(id) <= 4 {
		return "…"
	}
	return string(id[:4]) + "…"
}
