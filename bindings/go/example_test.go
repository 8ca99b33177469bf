package bill_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"os"
	"strings"
	"time"

	bill "github.com/libbill/libbill/bindings/go"
)

// The README's example. It is compiled by `go test` but not run (it has no
// Output comment), since it needs real credentials or the emulator.
func ExampleLogin() {
	opts := bill.Options{
		UserName: []byte(os.Getenv("BILL_USER")),
		Password: []byte(os.Getenv("BILL_PASSWORD")),
		DevKey:   []byte(os.Getenv("BILL_DEV_KEY")),
		OrgID:    os.Getenv("BILL_ORG_ID"),
		API:      bill.V3,
		BaseURL:  os.Getenv("BILL_BASE_URL"), // "" = production
		OnEvent: func(ev bill.Event) {
			log.Printf("bill event: %v %v %s", ev.Kind, ev.Status, ev.Detail)
		},
	}
	s, err := bill.Login(opts)
	// Login copied the secrets into libbill; wipe ours.
	clear(opts.UserName)
	clear(opts.Password)
	clear(opts.DevKey)
	if errors.Is(err, bill.ErrAuth) {
		var e *bill.Error
		errors.As(err, &e)
		log.Fatalf("BILL refused the credentials (%s)", e.Code) // e.g. BDC_1101
	} else if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	// An authenticated call; an expired session is renewed transparently.
	resp, err := s.Call(context.Background(), "GET", "vendors?max=20", nil)
	switch {
	case errors.Is(err, bill.ErrMFARequired):
		log.Fatal("this call needs an MFA-trusted session")
	case err != nil:
		log.Fatal(err)
	}
	fmt.Println(resp.HTTPStatus, len(resp.Body))

	// Or use the id in your own HTTP requests, then record the use.
	id, err := s.IDBytes()
	if err != nil {
		log.Fatal(err)
	}
	// ... send a request with header "sessionId: <id>" ...
	clear(id)
	_ = s.Touch()

	if err := s.Logout(); err != nil {
		log.Print(err)
	}
}

// The README's net/http example: BILL calls through your own http.Client.
func ExampleSession_Client() {
	s, err := bill.Login(bill.Options{
		UserName: []byte(os.Getenv("BILL_USER")),
		Password: []byte(os.Getenv("BILL_PASSWORD")),
		DevKey:   []byte(os.Getenv("BILL_DEV_KEY")),
		OrgID:    os.Getenv("BILL_ORG_ID"),
		BaseURL:  os.Getenv("BILL_BASE_URL"),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	baseURL := os.Getenv("BILL_BASE_URL") // e.g. https://gateway.prod.bill.com/connect

	client := s.Client() // or &http.Client{Transport: &bill.Transport{Session: s, Base: yourTransport}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "POST", baseURL+"/v3/vendors",
		strings.NewReader(`{"name":"Acme"}`))
	if err != nil {
		log.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
}
