package bill

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Transport is an http.RoundTripper that signs requests to BILL's v3 API
// with a Session, for code that calls BILL with its own http.Client:
//
//	client := &http.Client{Transport: &bill.Transport{Session: s}}
//	resp, err := client.Get(baseURL + "/v3/vendors")
//
// (Session.Client returns such a client.) For every request to the origin
// (scheme, host, port) of the session's base URL, it sets the headers devKey
// and sessionId from libbill (bill_session_auth_headers), so the program
// never holds the devKey. Requests to any other origin, redirects included,
// go out untouched. When BILL answers HTTP 401 or BDC_1109, it signs in
// again (shared with concurrent callers, and skipped when another request
// already replaced the refused id) and resends the request once, if
// the body can be replayed (no body, or http.Request.GetBody set, as
// http.NewRequest does for bytes, strings and bytes.Reader bodies); otherwise
// that reply is returned. After every reply BILL accepted (status below 400)
// it records the use (bill_touch_sent, dated when the request was sent), so
// libbill does not renew a session that is in use.
//
// The header values are Go strings, which cannot be wiped; they live in the
// copy of the request that goes out, never in the caller's request.
type Transport struct {
	Session *Session
	// Base sends the requests; nil means http.DefaultTransport.
	Base http.RoundTripper
}

// Client returns an http.Client whose Transport is a bill.Transport for s.
func (s *Session) Client() *http.Client {
	return &http.Client{Transport: &Transport{Session: s}}
}

// peekLimit is how much of a 4xx reply is read to look for BDC_1109.
const peekLimit = 64 << 10

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	s := t.Session
	if s == nil || s.h == nil {
		closeBody(req)
		return nil, errInvalid("bill.Transport has no Session")
	}
	if !s.sameOrigin(req.URL) {
		return base.RoundTrip(req)
	}
	ctx := req.Context()
	hasBody := req.Body != nil && req.Body != http.NoBody
	for attempt := 0; ; attempt++ {
		hdr, err := s.authHeadersRenewing(ctx)
		if err != nil {
			if attempt == 0 {
				closeBody(req)
			}
			return nil, err
		}
		out := req.Clone(ctx)
		if attempt > 0 && hasBody {
			if out.Body, err = req.GetBody(); err != nil {
				return nil, err
			}
		}
		for name, v := range hdr {
			out.Header.Del(name)
			out.Header[name] = v // BILL's spelling (devKey, sessionId), not the canonical form
		}
		sent := time.Now()
		resp, err := base.RoundTrip(out)
		if err != nil {
			return nil, err
		}
		if !sessionInvalid(resp) {
			if resp.StatusCode < 400 {
				_ = s.TouchSent(time.Since(sent)) // a session that ended meanwhile cannot be revived by it
			}
			return resp, nil
		}
		if attempt > 0 || (hasBody && req.GetBody == nil) {
			return resp, nil
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, peekLimit))
		resp.Body.Close()
		if err := s.renewUnlessReplaced(ctx, hdr); err != nil {
			return nil, err
		}
	}
}

// renewUnlessReplaced signs in again after BILL refused the id in sent,
// unless another request already replaced that id: requests refused one
// after the other then share one sign-in, as concurrent ones do in libbill.
func (s *Session) renewUnlessReplaced(ctx context.Context, sent http.Header) error {
	now, err := s.AuthHeaders()
	if err == nil && len(now["sessionId"]) == 1 && len(sent["sessionId"]) == 1 && now["sessionId"][0] != sent["sessionId"][0] {
		return nil
	}
	return s.RenewContext(ctx)
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// sessionInvalid reports whether BILL refused the session: HTTP 401, or a
// 4xx whose body carries BDC_1109. The part of the body it reads is put back.
func sessionInvalid(resp *http.Response) bool {
	if resp.StatusCode == http.StatusUnauthorized {
		return true
	}
	if resp.StatusCode < 400 || resp.StatusCode > 499 || resp.Body == nil {
		return false
	}
	head, err := io.ReadAll(io.LimitReader(resp.Body, peekLimit))
	rest := resp.Body
	resp.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(head), rest), rest}
	return err == nil && bytes.Contains(head, []byte(`"BDC_1109"`))
}

// authHeadersRenewing reads the auth headers, signing in again first when
// the session idled out.
func (s *Session) authHeadersRenewing(ctx context.Context) (http.Header, error) {
	h, err := s.AuthHeaders()
	if errors.Is(err, ErrSessionExpired) {
		if err := s.RenewContext(ctx); err != nil {
			return nil, err
		}
		h, err = s.AuthHeaders()
	}
	return h, err
}

// sameOrigin reports whether u is on the origin of the session's base URL.
func (s *Session) sameOrigin(u *url.URL) bool {
	return u != nil && s.origin != "" && originOf(u) == s.origin
}

// originOf is scheme://host:port, lower case, with the scheme's default port made explicit.
func originOf(u *url.URL) string {
	scheme := strings.ToLower(u.Scheme)
	port := u.Port()
	if port == "" {
		switch scheme {
		case "https":
			port = "443"
		case "http":
			port = "80"
		}
	}
	return scheme + "://" + strings.ToLower(u.Hostname()) + ":" + port
}
